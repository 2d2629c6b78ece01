"""Network faults from a real PEP 503 index and a real conda channel on 127.0.0.1.

The servers (:class:`tests.support.servers.StaticServer`) answer chosen paths with
scripted faults: HTTP 500s, a body cut short (``Content-Length`` larger than what
is sent, then the connection closes), a response that never comes, a wheel whose
link carries a wrong sha256, a 401. Each apply is ``python -m reconciler`` in its
own process. Whatever happens, the image's managed bytes (conda-meta records and
dist-info RECORD files) stay identical, a failure is one clear message with exit
1 and no traceback, and nothing is left half-installed.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.backends.pip import HTTP_RETRIES
from tests.support.faultrun import (
    Managed,
    Run,
    assert_clean_failure,
    env_hash,
    make_image,
    proc_env,
    run_cli,
    site_packages,
    state_documents,
    write_manifest,
)
from tests.support.servers import STALL, TRUNCATE, StaticServer, build_simple_index, serve

WHEEL = "/files/delta-1.1-py3-none-any.whl"
PAGE = "/simple/delta/"


@pytest.fixture
def image(tmp_path: Path, channel: Path, wheelhouse: Path, isolated: dict[str, str]) -> Path:
    """The image prefix (conda pyfoo 1.0, pip alpha 1.0)."""
    return make_image(tmp_path / "image", channel, wheelhouse)


def _index(wheelhouse: Path, dest: Path, bad_hashes: tuple[str, ...] = ()) -> StaticServer:
    return StaticServer(build_simple_index(wheelhouse, dest, bad_hashes=bad_hashes)).start()


@pytest.fixture
def index(wheelhouse: Path, tmp_path: Path) -> Iterator[StaticServer]:
    """The standard wheelhouse as a PEP 503 index (``<url>simple/``)."""
    server = _index(wheelhouse, tmp_path / "index")
    yield server
    server.stop()


def _delta_manifest(tmp_path: Path, image: Path, index_url: str) -> Path:
    return write_manifest(
        tmp_path / "manifest.yaml",
        {"image": {"prefix": image, "pip": ["delta"]}},
        pip={"index_url": index_url},
    )


#: The installer's requests. reconciler reads the index too (the wheel's RECORD for the
#: file-clash check, pages for held-back versions and chains): the faults below are the
#: installer's unless a test says otherwise, and reconciler's reads are counted apart.
UV = "uv/"


def _answers(server: StaticServer, path: str, agent: str = UV) -> list[object]:
    return [r.answer for r in server.requests() if r.path == path and r.agent.startswith(agent)]


def _delta_files(image: Path) -> list[str]:
    return sorted(p.name for p in site_packages(image).iterdir() if p.name.startswith("delta"))


def _assert_untouched(image: Path, managed: Managed, whole: str) -> None:
    assert managed.unchanged()
    assert _delta_files(image) == []
    assert env_hash(image) == whole


def _assert_failed_journal(tmp_path: Path, image: Path, *needles: str) -> None:
    docs = state_documents(tmp_path / "state", image)
    assert docs["journal"]["status"] == "failed", docs["journal"]
    for needle in needles:
        assert needle in docs["journal"]["error"], docs["journal"]["error"]
    assert "pip:delta" not in docs.get("owned", {}).get("packages", {})


def test_two_500s_then_200_are_retried_and_the_apply_succeeds(
    tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    managed = Managed(image)
    index.script(PAGE, 500, agent=UV)  # the preview's first request
    index.script(WHEEL, 500, 500, agent=UV)  # the install's download
    manifest = _delta_manifest(tmp_path, image, f"{index.url}simple/")

    run = run_cli(proc_env(isolated, tmp_path), tmp_path / "state", "apply", manifest)

    assert run.returncode == 0, run.output
    assert _answers(index, PAGE)[:2] == [500, 200]
    assert _answers(index, WHEEL) == [500, 500, 200]  # uv retried twice, with backoff
    assert _delta_files(image) == ["delta", "delta-1.1.dist-info"]
    assert managed.unchanged()
    assert state_documents(tmp_path / "state", image)["journal"]["status"] == "done"


@pytest.mark.parametrize("where", ["download", "index-page"])
def test_500_forever_fails_within_the_retry_bound_and_changes_nothing(
    where: str, tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    """No UV_HTTP_* in the environment: reconciler's own bounds apply."""
    env = proc_env(isolated, tmp_path)
    assert not [k for k in env if k.startswith("UV_HTTP")]
    managed, whole = Managed(image), env_hash(image)
    path = WHEEL if where == "download" else PAGE
    index.script(path, then=500, agent=UV)
    manifest = _delta_manifest(tmp_path, image, f"{index.url}simple/")

    run = run_cli(env, tmp_path / "state", "apply", manifest)

    assert_clean_failure(run, "500 Internal Server Error", f"retried {HTTP_RETRIES} time(s)")
    answers = _answers(index, path)
    if where == "download":
        assert answers == [500] * (HTTP_RETRIES + 1)
    else:
        # The preview and, beside it, the held-back lookup (`uv pip compile --no-deps`)
        # both read the page: each within the bound.
        assert set(answers) == {500} and len(answers) in (HTTP_RETRIES + 1, 2 * (HTTP_RETRIES + 1))
    assert run.seconds < 30, run.seconds
    _assert_untouched(image, managed, whole)
    if where == "download":  # the install failed: recorded as such
        assert "uv install into" in run.output
        _assert_failed_journal(tmp_path, image, "500 Internal Server Error")
        # The failed installer's own output is in the apply log.
        logs = list((tmp_path / "state" / "logs").glob("apply-*.log"))
        assert any("500 Internal Server Error" in p.read_text() for p in logs), logs
    else:  # the preview failed: the plan never got as far as the journal
        assert "uv dry run failed" in run.output
        assert "journal" not in state_documents(tmp_path / "state", image)


@pytest.mark.parametrize("times", ["once", "always"])
def test_truncated_download_is_retried_or_fails_with_nothing_half_installed(
    times: str, tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    managed, whole = Managed(image), env_hash(image)
    if times == "once":
        index.script(WHEEL, TRUNCATE, agent=UV)
    else:
        index.script(WHEEL, then=TRUNCATE, agent=UV)
    manifest = _delta_manifest(tmp_path, image, f"{index.url}simple/")
    env = proc_env(isolated, tmp_path, UV_HTTP_RETRIES="1")  # the user's own bound

    run = run_cli(env, tmp_path / "state", "apply", manifest)

    answers = _answers(index, WHEEL)
    assert answers[0] == TRUNCATE
    if times == "once":
        assert run.returncode == 0, run.output
        assert answers == [TRUNCATE, 200]
        assert _delta_files(image) == ["delta", "delta-1.1.dist-info"]
        assert managed.unchanged()
        return
    assert_clean_failure(run, "uv install into", "end of file before message length reached")
    assert set(answers) == {TRUNCATE} and len(answers) >= 2
    _assert_untouched(image, managed, whole)
    _assert_failed_journal(tmp_path, image, "end of file")


def test_stalled_download_fails_within_the_read_timeout(
    tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    managed, whole = Managed(image), env_hash(image)
    index.script(WHEEL, then=STALL, agent=UV)  # accepted; nothing is ever sent
    manifest = _delta_manifest(tmp_path, image, f"{index.url}simple/")
    env = proc_env(isolated, tmp_path, UV_HTTP_TIMEOUT="2", UV_HTTP_RETRIES="1")

    run = run_cli(env, tmp_path / "state", "apply", manifest, timeout=60)

    assert_clean_failure(run, "operation timed out", "2 s read timeout")
    assert _answers(index, WHEEL) == [STALL, STALL]  # the user's bounds were honoured
    assert run.seconds < 20, run.seconds
    _assert_untouched(image, managed, whole)
    _assert_failed_journal(tmp_path, image, "timed out")


def test_wrong_sha256_in_the_index_installs_nothing(
    tmp_path: Path, image: Path, wheelhouse: Path, isolated: dict[str, str]
) -> None:
    managed, whole = Managed(image), env_hash(image)
    server = _index(wheelhouse, tmp_path / "index", bad_hashes=("delta-1.1-py3-none-any.whl",))
    try:
        manifest = _delta_manifest(tmp_path, image, f"{server.url}simple/")
        run = run_cli(proc_env(isolated, tmp_path), tmp_path / "state", "apply", manifest)
        downloads = _answers(server, WHEEL)
    finally:
        server.stop()

    # The error and its cause, not the last line of uv's output (a bare hash).
    assert_clean_failure(run, "Hash mismatch for `delta==1.1`", "Failed to download")
    assert downloads == [200]  # served in full; refused because of its hash
    _assert_untouched(image, managed, whole)
    _assert_failed_journal(tmp_path, image, "Hash mismatch")


def test_conda_channel_500_on_repodata_is_a_clear_error_and_changes_nothing(
    tmp_path: Path, image: Path, channel: Path, isolated: dict[str, str]
) -> None:
    managed, whole = Managed(image), env_hash(image)
    with serve(channel) as server:
        server.script("*repodata*", then=500)
        manifest = write_manifest(
            tmp_path / "manifest.yaml",
            {"image": {"prefix": image, "conda": ["condaonly"]}},
            channels=[server.url],
        )
        run = run_cli(proc_env(isolated, tmp_path), tmp_path / "state", "apply", manifest)
        requests = server.requests()

    assert_clean_failure(run, "conda solve failed", "500")
    assert requests and all(r.answer == 500 for r in requests), requests
    assert not any(r.path.endswith(".tar.bz2") for r in requests)
    assert managed.unchanged()
    assert env_hash(image) == whole
    assert not list((image / "conda-meta").glob("condaonly-*"))
    assert "journal" not in state_documents(tmp_path / "state", image)


def _runs_text(runs: list[Run]) -> str:
    return "\n".join(r.output for r in runs)


def test_401_with_credentials_in_the_url_never_shows_the_secret(
    tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    """The index accepts the page and metadata, then refuses the download with a 401;
    the password appears in no output, log, journal, plan file or status file."""
    secret = "s3cr3t-Pa55"
    managed, whole = Managed(image), env_hash(image)
    index.script("/files/*.whl", then=401, agent=UV)
    manifest = _delta_manifest(tmp_path, image, index.url_with(f"user:{secret}", "simple/"))
    state, plan_file = tmp_path / "state", tmp_path / "plan.json"
    env = proc_env(isolated, tmp_path)

    runs = [
        run_cli(env, state, "plan", manifest, "--out", plan_file),
        run_cli(env, state, "apply", manifest),
        run_cli(env, state, "apply", "--plan", plan_file, "--json"),
        run_cli(env, state, "status"),
        run_cli(env, state, "status", "--json"),
    ]

    assert [r.returncode for r in runs] == [0, 1, 1, 1, 1], _runs_text(runs)
    for run in runs[1:3]:
        assert_clean_failure(run, "401 Unauthorized")
    assert "check the credentials" in runs[1].output
    assert "failed" in runs[3].stdout
    # The secret was really used: the server saw it on every request.
    basic = "Basic " + base64.b64encode(f"user:{secret}".encode()).decode()
    assert index.requests() and all(r.authorization == basic for r in index.requests())
    assert 401 in _answers(index, WHEEL)
    # ... and it is nowhere: outputs, the plan file, every file of the state dir.
    assert secret not in _runs_text(runs)
    files = [plan_file, *(p for p in state.rglob("*") if p.is_file())]
    names = {p.name for p in files}
    assert {"plan.json", "journal.json", "status.json", "baseline.json"} <= names, names
    for path in files:
        assert secret.encode() not in path.read_bytes(), path
    _assert_untouched(image, managed, whole)
    _assert_failed_journal(tmp_path, image, "401 Unauthorized")


def test_500_forever_on_reconcilers_own_wheel_read_fails_before_anything_is_installed(
    tmp_path: Path, image: Path, index: StaticServer, isolated: dict[str, str]
) -> None:
    """The file-clash check reads the wheel's RECORD before the installer runs: a fault
    there is retried within the same bound, then one clear error; nothing is installed."""
    managed, whole = Managed(image), env_hash(image)
    index.script(WHEEL, then=500, agent="reconciler/", ranges=True)
    manifest = _delta_manifest(tmp_path, image, f"{index.url}simple/")

    run = run_cli(proc_env(isolated, tmp_path), tmp_path / "state", "apply", manifest)

    assert_clean_failure(run, f"HTTP 500 (after {HTTP_RETRIES + 1} attempts)")
    assert "delta-1.1-py3-none-any.whl" in run.output
    assert _answers(index, WHEEL, agent="reconciler/") == [500] * (HTTP_RETRIES + 1)
    assert _answers(index, WHEEL) == []  # the installer never started
    _assert_untouched(image, managed, whole)
    assert "journal" not in state_documents(tmp_path / "state", image)
