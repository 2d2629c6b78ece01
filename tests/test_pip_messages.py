"""What the pip side says when a request cannot be had, and how refusals read.

Real venvs, real uv and pip, a local wheelhouse and a real HTTP index on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import zipfile
from pathlib import Path
from typing import Any

import pytest

from reconciler.manifest.model import PipSettings
from tests.support.envs import make_venv, pip_install
from tests.support.manifests import run_cli, write_manifest
from tests.support.servers import build_simple_index, serve
from tests.support.wheels import build_wheel, overwrite_in_place


def _plan(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, manifest: Path, *extra: str
) -> tuple[int, str, str]:
    state = tmp_path / "state"
    assert run_cli(capsys, "--state-dir", state, "baseline", "capture", "-q", manifest)[0] == 0
    return run_cli(capsys, "--state-dir", state, "plan", manifest, *extra)


def _offline(wheelhouse: Path) -> dict[str, object]:
    return {"no_index": True, "find_links": [str(wheelhouse)]}


def _venv(tmp_path: Path, wheelhouse: Path, *, with_pip: bool = False) -> Path:
    prefix = make_venv(tmp_path / "env", with_pip=with_pip)
    pip_install(prefix, ["alpha==1.0"], wheelhouse)
    return prefix


@pytest.mark.parametrize("installer", ["uv", "pip"])
def test_missing_version_is_one_sentence_with_the_newest_versions(
    installer: str,
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    prefix = _venv(tmp_path, wheelhouse, with_pip=installer == "pip")
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"e": {"prefix": prefix, "pip": ["delta==99.0"]}},
        defaults={"installer": installer, "pip": _offline(wheelhouse)},
    )
    code, out, err = _plan(capsys, tmp_path, manifest)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {prefix}: delta==99.0 was asked for, but no version of delta on {wheelhouse} "
        "matches it (the newest there: 1.1, 1.0)\n"
        "  hint: change the version in the manifest to one the repository has\n"
    )


def test_missing_project_names_the_repositories(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = _venv(tmp_path, wheelhouse)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["nosuch"]}}, wheelhouse=wheelhouse
    )
    code, out, err = _plan(capsys, tmp_path, manifest)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {prefix}: nosuch was asked for, but no distribution named 'nosuch' is on "
        f"{wheelhouse}\n"
        "  hint: check the name in the manifest (a typo?) and the repositories it uses\n"
    )


def test_missing_version_on_an_index_is_redacted(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = _venv(tmp_path, wheelhouse)
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        url = server.url_with("alice:s3cret", "/simple/")
        manifest = write_manifest(
            tmp_path / "m.yaml",
            {"e": {"prefix": prefix, "pip": ["delta>=5"]}},
            defaults={"pip": {"index_url": url}},
        )
        code, out, err = _plan(capsys, tmp_path, manifest)
    assert (code, out) == (1, "")
    assert "s3cret" not in err
    redacted = url.replace("alice:s3cret@", "***@")
    assert err.splitlines()[0] == (
        f"error: {prefix}: delta>=5 was asked for, but no version of delta on {redacted} "
        "matches it (the newest there: 1.1, 1.0)"
    )


def test_source_only_package_says_reconciler_never_builds(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = _venv(tmp_path, wheelhouse)
    house = Path(shutil.copytree(wheelhouse, tmp_path / "house"))
    src = tmp_path / "srconly-1.0"
    src.mkdir()
    (src / "PKG-INFO").write_text("Metadata-Version: 2.1\nName: srconly\nVersion: 1.0\n")
    with tarfile.open(house / "srconly-1.0.tar.gz", "w:gz") as archive:
        archive.add(src, arcname="srconly-1.0")
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["srconly"]}}, wheelhouse=house
    )
    code, out, err = _plan(capsys, tmp_path, manifest)
    assert (code, out) == (1, "")
    assert err == (
        f"error: {prefix}: srconly 1.0 has only a source distribution on {house} and "
        "reconciler never builds packages\n"
        "  hint: build a wheel into a wheelhouse (`pip wheel --no-deps 'srconly==1.0' -w DIR`) "
        "and add that directory to `find_links` in the manifest\n"
    )


def test_pip_reads_no_pip_conf(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A pip.conf (here via PIP_CONFIG_FILE) with another find-links offering a newer
    delta, and a bogus index, changes nothing: the manifest's repositories are the only ones."""
    prefix = _venv(tmp_path, wheelhouse, with_pip=True)
    bogus = tmp_path / "bogus-links"
    build_wheel(bogus, "delta", "9.0")
    conf = tmp_path / "pip.conf"
    conf.write_text(
        f"[global]\nfind-links = {bogus}\nindex-url = http://127.0.0.1:9/nothing/\n"
        "no-index = false\n"
    )
    monkeypatch.setenv("PIP_CONFIG_FILE", str(conf))
    manifest = write_manifest(
        tmp_path / "m.yaml",
        {"e": {"prefix": prefix, "pip": ["delta"]}},
        defaults={"installer": "pip", "pip": _offline(wheelhouse)},
    )
    code, out, err = _plan(capsys, tmp_path, manifest, "--json")
    assert code == 0, err
    changes = json.loads(out)["environments"][0]["changes"]
    assert [(c["name"], c["to"]) for c in changes] == [("delta", "1.1")]


def test_refusal_text_and_held_back_text(
    tmp_path: Path, wheelhouse: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    house = Path(shutil.copytree(wheelhouse, tmp_path / "house"))
    for version, requires in (("22.12.0", "packaging>=20"), ("23.1.0", "packaging>=22.0")):
        build_wheel(house, "black", version, [requires])
    for version in ("21.3", "22.0"):
        build_wheel(house, "packaging", version)
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["packaging==21.3", "alpha==1.0"], house)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["black", "gamma"]}}, wheelhouse=house
    )
    code, out, _ = _plan(capsys, tmp_path, manifest)
    assert code == 3, out
    assert out.splitlines()[1:] == [  # in the order of uv's report
        "  ! upgrade pip alpha 1.0 -> 2.0",
        "      refused: gamma 1.0 requires beta>=2; beta 2.0 requires alpha>=2; "
        "alpha is managed at 1.0",
        "  + install pip beta 2.0 (required by gamma)",
        "  + install pip black 23.1.0 (requested)",
        "  + install pip gamma 1.0 (requested)",
        "  ! upgrade pip packaging 21.3 -> 22.0",
        "      refused: black 23.1.0 requires packaging>=22.0; packaging is managed at 21.3",
        "Plan: 3 to install, 2 to upgrade; 2 refused (apply would change nothing).",
        "  hint: e: gamma needs alpha 1.0 to change: remove gamma from the manifest, or pin "
        "a version of gamma that works with it",
        "  hint: e: black needs packaging 21.3 to change: remove black from the manifest, or "
        "pin a version of black that works with it",
    ], out
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["black"]}}, wheelhouse=house
    )
    code, out, _ = run_cli(capsys, "--state-dir", tmp_path / "state", "plan", manifest)
    assert code == 0
    assert out.splitlines()[1:] == [
        "  + install pip black 22.12.0 (requested)",
        "      held back: newest is 23.1.0; black 23.1.0 requires packaging>=22.0; "
        "packaging is managed at 21.3",
        "Plan: 1 to install.",
    ]


def test_metadata_from_an_index_uses_pep658_and_downloads_no_wheel(
    tmp_path: Path, wheelhouse: Path
) -> None:
    from reconciler.backends.metadata import listing, requirements_of

    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        settings = PipSettings(index_url=server.url_with("u:p", "/simple/"))
        found = requirements_of([("gamma", "1.0"), ("beta", "2.0"), ("nosuch", "1")], settings)
        versions = listing("delta", settings)
        paths = [r.path for r in server.requests()]
    assert found == {"gamma": ("beta>=2",), "beta": ("alpha>=2",)}
    assert versions is not None and versions.versions() == ["1.1", "1.0"]
    assert not [p for p in paths if p.endswith(".whl")]
    assert any(p.endswith("gamma-1.0-py3-none-any.whl.metadata") for p in paths)


def test_held_back_round_trips_and_a_bad_one_is_rejected() -> None:
    from reconciler.plan.model import Change, HeldBack, Holder, Plan, validate_plan_document

    held = HeldBack("23.1.0", (Holder("packaging", "21.3", "packaging>=22.0", "managed"),))
    change = Change("install", "pip", "black", None, "22.12.0", True, held_back=held)
    assert Change.from_json(change.to_json()) == change
    assert "held_back" not in Change("install", "pip", "x", None, "1", True).to_json()
    doc = {
        "format_version": "1",
        "manifest": {"path": "m.yaml", "sha256": "0"},
        "environments": [
            {
                "name": "e", "prefix": "/p", "kind": "venv", "exists": True,
                "fingerprint": "f", "changes": [change.to_json()], "satisfied": [],
                "notices": [], "pip_requirements": [], "pip_constraints": [],
                "conda_specs": [], "conda_pinned": [],
            }
        ],
    }  # fmt: skip
    assert validate_plan_document(doc) is None
    assert Plan.from_json(doc).environments[0].changes == (change,)
    doc["environments"][0]["changes"][0]["held_back"] = {"newest": 1, "by": []}
    assert (validate_plan_document(doc) or "").startswith("environment 'e': bad change")


def test_metadata_reads_each_index_page_once_per_plan(tmp_path: Path, wheelhouse: Path) -> None:
    from packaging.tags import sys_tags

    from reconciler.backends import metadata
    from reconciler.backends.wheels import locate_wheel

    metadata.forget()
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        settings = PipSettings(index_url=server.url_with("u:p", "/simple/"))
        first = metadata.requirements_of([("gamma", "1.0")], settings)
        again = metadata.requirements_of([("gamma", "1.0")], settings)
        listed = metadata.listing("gamma", settings)
        # The clash check locates the wheel from the same page.
        wheel = locate_wheel(
            "gamma", "1.0", settings, [str(t) for t in sys_tags()], hash_local=False
        )
        once = [r.path for r in server.requests()]
        metadata.forget()  # what each plan starts with
        metadata.requirements_of([("gamma", "1.0")], settings)
        paths = [r.path for r in server.requests()]
        auth = {r.authorization for r in server.requests()}
    assert first == again == {"gamma": ("beta>=2",)}
    assert listed is not None and listed.versions() == ["1.0"]
    assert wheel is not None and wheel.filename == "gamma-1.0-py3-none-any.whl"
    assert once == ["/simple/gamma/", "/files/gamma-1.0-py3-none-any.whl.metadata"]
    assert paths == once * 2
    assert len(auth) == 1 and None not in auth  # the index's credentials, on its host


def _black_house(tmp_path: Path, wheelhouse: Path) -> tuple[Path, Path]:
    """The wheelhouse with black 22.12.0 (packaging>=20) and 23.1.0 (packaging>=22.0), and
    packaging 21.3, and a venv holding packaging 21.3, where black is held back at
    22.12.0: (wheelhouse, prefix)."""
    house = Path(shutil.copytree(wheelhouse, tmp_path / "house"))
    for version, requires in (("22.12.0", "packaging>=20"), ("23.1.0", "packaging>=22.0")):
        build_wheel(house, "black", version, [requires])
    build_wheel(house, "packaging", "21.3")
    prefix = make_venv(tmp_path / "env")
    pip_install(prefix, ["packaging==21.3"], house)
    return house, prefix


def _newest_asked(monkeypatch: pytest.MonkeyPatch) -> list[tuple[list[str], dict[str, str]]]:
    """Each question uv's newest lookup is asked from now on, with its answer."""
    from reconciler.backends import pip

    asked: list[tuple[list[str], dict[str, str]]] = []
    real = pip.UvCli.newest

    def recording(self: pip.UvCli, python: Path, requirements: list[str], *args: Any) -> Any:
        answer = real(self, python, requirements, *args)
        asked.append((list(requirements), answer))
        return answer

    monkeypatch.setattr(pip.UvCli, "newest", recording)
    return asked


def test_newest_is_asked_only_where_a_newer_release_may_be(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    house, prefix = _black_house(tmp_path, wheelhouse)
    asked = _newest_asked(monkeypatch)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["delta", "black"]}}, wheelhouse=house
    )
    code, out, _ = _plan(capsys, tmp_path, manifest)
    assert code == 0, out
    assert out.splitlines()[1:] == [
        "  + install pip black 22.12.0 (requested)",
        "      held back: newest is 23.1.0; black 23.1.0 requires packaging>=22.0; "
        "packaging is managed at 21.3",
        "  + install pip delta 1.1 (requested)",
        "Plan: 2 to install.",
    ]
    # Local directories only: asked once, while the preview runs, for each request that
    # two versions are offered of (delta 1.0 and 1.1, black 22.12.0 and 23.1.0); the
    # answer serves black, the one request planned below a newer release.
    assert [q for q, _ in asked] == [["delta", "black"]]

    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["gamma"]}}, wheelhouse=house
    )
    code, out, _ = run_cli(capsys, "--state-dir", tmp_path / "state", "plan", manifest)
    assert (code, out.splitlines()[1:]) == (
        0,
        [
            "  + install pip alpha 2.0 (required by beta <- gamma)",
            "  + install pip beta 2.0 (required by gamma)",
            "  + install pip gamma 1.0 (requested)",
            "Plan: 3 to install.",
        ],
    )
    assert [q for q, _ in asked] == [["delta", "black"]]  # gamma 1.0 is the only gamma offered


def test_the_clash_check_does_not_wait_for_an_early_newest_it_does_not_need(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # delta (1.0 and 1.1 offered) is asked beside the preview; the preview installs the
    # newest, 1.1, so the answer is not needed: the chains and the clash check run while
    # the question is still out (here, one that answers only once the clash check ran),
    # and the plan still waits for it before it returns.
    import threading

    from reconciler.backends import pip
    from reconciler.plan import pip_side

    house, prefix = _black_house(tmp_path, wheelhouse)
    checked = threading.Event()
    released: list[bool] = []
    real_newest, real_check = pip.UvCli.newest, pip_side.refuse_clashes

    def newest(self: pip.UvCli, *args: Any) -> Any:
        released.append(checked.wait(10))
        return real_newest(self, *args)

    def check(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_check(*args, **kwargs)
        finally:
            checked.set()

    monkeypatch.setattr(pip.UvCli, "newest", newest)
    monkeypatch.setattr(pip_side, "refuse_clashes", check)
    manifest = write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["delta"]}}, wheelhouse=house
    )
    code, out, _ = _plan(capsys, tmp_path, manifest)
    assert (code, out.splitlines()[1:]) == (
        0,
        ["  + install pip delta 1.1 (requested)", "Plan: 1 to install."],
    )
    assert released == [True]  # asked once, and answered after the clash check


def _zeta_manifest(tmp_path: Path, wheelhouse: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """:func:`_black_house` with zeta 5.0 installed by reconciler from elsewhere (owned:
    it may move, so the preview resolves it) and zeta 1.0 and 2.0 offered, and a
    manifest asking for zeta>=5 (met, but not offered) and black."""
    house, prefix = _black_house(tmp_path, wheelhouse)
    build_wheel(tmp_path / "elsewhere", "zeta", "5.0")
    for version in ("1.0", "2.0"):
        build_wheel(house, "zeta", version)
    first = write_manifest(
        tmp_path / "first.yaml", {"e": {"prefix": prefix, "pip": ["zeta==5.0"]}},
        wheelhouse=tmp_path / "elsewhere",
    )  # fmt: skip
    assert run_cli(capsys, "--state-dir", tmp_path / "state", "apply", first)[0] == 0
    return write_manifest(
        tmp_path / "m.yaml", {"e": {"prefix": prefix, "pip": ["zeta>=5", "black"]}},
        wheelhouse=house,
    )  # fmt: skip


def test_an_early_newest_that_cannot_answer_is_asked_again_exactly(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # zeta>=5 is met by the installed zeta 5.0, which the only location does not offer
    # (1.0 and 2.0): asked with the preview (zeta is owned, so the preview resolves it),
    # it fails the whole early question; black's newest is then asked alone after the
    # preview, and the plan says what it said.
    manifest = _zeta_manifest(tmp_path, wheelhouse, capsys)
    asked = _newest_asked(monkeypatch)
    code, out, _ = _plan(capsys, tmp_path, manifest)
    assert code == 0, out
    assert out.splitlines()[1:] == [
        "  + install pip black 22.12.0 (requested)",
        "      held back: newest is 23.1.0; black 23.1.0 requires packaging>=22.0; "
        "packaging is managed at 21.3",
        "Plan: 1 to install.",
    ]
    assert asked == [(["zeta>=5", "black"], {}), (["black"], {"black": "23.1.0"})]


def test_what_an_ended_early_newest_cannot_answer_is_asked_beside_the_clash_check(
    tmp_path: Path,
    wheelhouse: Path,
    isolated: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # As above, with the preview returning only once the early question has ended: its
    # failure is known then, so black's newest is asked again at once, while the chains
    # and the clash check run, not after them.
    import threading

    from reconciler.backends import pip
    from reconciler.plan import pip_side

    manifest = _zeta_manifest(tmp_path, wheelhouse, capsys)
    events: list[str] = []
    early_ended = threading.Event()
    real_newest, real_preview, real_check = (
        pip.UvCli.newest, pip.UvCli.preview, pip_side.refuse_clashes
    )  # fmt: skip

    def newest(self: pip.UvCli, python: Path, requirements: list[str], *args: Any) -> Any:
        events.append(f"ask {' '.join(requirements)}")
        try:
            return real_newest(self, python, requirements, *args)
        finally:
            early_ended.set()

    def preview(self: pip.UvCli, *args: Any, **kwargs: Any) -> Any:
        found = real_preview(self, *args, **kwargs)
        assert early_ended.wait(30)
        return found

    def check(*args: Any, **kwargs: Any) -> Any:
        try:
            return real_check(*args, **kwargs)
        finally:
            events.append("clash check done")

    monkeypatch.setattr(pip.UvCli, "newest", newest)
    monkeypatch.setattr(pip.UvCli, "preview", preview)
    monkeypatch.setattr(pip_side, "refuse_clashes", check)
    code, out, _ = _plan(capsys, tmp_path, manifest)
    assert code == 0, out
    assert "held back: newest is 23.1.0" in out, out
    assert events[:2] == ["ask zeta>=5 black", "ask black"], events
    assert events[-1] == "clash check done", events


def test_newer_offered_is_false_only_for_local_directories_that_say_so(tmp_path: Path) -> None:
    from reconciler.backends.local_dirs import may_offer_several, newer_offered

    house = tmp_path / "house"
    build_wheel(house, "alpha", "1.0")
    build_wheel(house, "alpha", "2.0rc1")
    (house / "beta-1.0.tar.gz").write_bytes(b"")
    (house / "beta-2.0.tar.gz").write_bytes(b"")
    local = PipSettings(find_links=(str(house),), no_index=True)
    assert newer_offered("alpha", "2.0rc1", local) is False
    assert newer_offered("alpha", "1.0", local) is True  # a pre-release counts: uv may say so
    assert newer_offered("beta", "1.0", local) is True  # an sdist counts too
    assert newer_offered("beta", "2.0", local) is False
    assert newer_offered("gamma", "1.0", local) is False
    assert (
        newer_offered("alpha", "2.0rc1", PipSettings(find_links=(house.as_uri(),), no_index=True))
        is False
    )
    assert newer_offered("alpha", "not a version", local) is True
    assert newer_offered("alpha", "2.0rc1", PipSettings(find_links=(str(house),))) is True  # PyPI
    page = PipSettings(find_links=(str(house / "alpha-1.0-py3-none-any.whl"),), no_index=True)
    assert newer_offered("alpha", "2.0rc1", page) is True  # not a directory
    remote = PipSettings(find_links=("http://127.0.0.1:1/links/",), no_index=True)
    assert newer_offered("alpha", "2.0rc1", remote) is True
    # Before the preview: could two releases be offered (file names, read as written)?
    build_wheel(house, "gamma", "1.0")
    assert [may_offer_several(n, local) for n in ("alpha", "beta", "gamma", "zeta")] == [
        True,
        True,
        False,
        False,
    ]
    assert may_offer_several("gamma", PipSettings(find_links=(str(house),))) is True  # PyPI
    assert may_offer_several("gamma", page) is True


def test_a_local_wheels_requirements_are_kept_until_the_file_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from reconciler.backends import metadata

    house, cache = tmp_path / "house", tmp_path / "cache"
    wheel = build_wheel(house, "gamma", "1.0", ["beta>=2"])
    settings = PipSettings(find_links=(str(house),), no_index=True)
    assert metadata.requirements_of([("gamma", "1.0")], settings, cache) == {"gamma": ("beta>=2",)}

    def no_zip(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the kept requirements were not used")

    monkeypatch.setattr(zipfile, "ZipFile", no_zip)
    metadata.forget()
    assert metadata.requirements_of([("gamma", "1.0")], settings, cache) == {"gamma": ("beta>=2",)}
    monkeypatch.undo()

    # Overwritten in place by a wheel of the same size, mtime put back: read anew.
    other = overwrite_in_place(
        wheel,
        [f"beta>={n}" for n in range(3, 10)],
        lambda spec: build_wheel(tmp_path / spec, "gamma", "1.0", [spec]),
    )
    metadata.forget()
    assert metadata.requirements_of([("gamma", "1.0")], settings, cache) == {"gamma": (other,)}


_DIE = "import os, signal, sys; signal.signal({sig}, signal.SIG_DFL); os.kill(os.getpid(), {sig})"


@pytest.mark.parametrize(
    ("code", "said"),
    [
        ("sys.exit(1)", "exit 1"),
        (_DIE.format(sig="signal.SIGINT"),
         "killed by SIGINT (an interrupt: Ctrl-C, or a notebook's stop button)"),
        ("os.kill(os.getpid(), signal.SIGKILL)", "killed by SIGKILL (out of memory, or kill -9)"),
        (_DIE.format(sig="signal.SIGHUP"), "killed by SIGHUP"),
    ],
)  # fmt: skip
def test_an_installer_that_died_of_a_signal_says_which(
    tmp_path: Path, code: str, said: str
) -> None:
    """A real process that ends with no output: its exit code, or the signal it died of
    (never ``exit -2``)."""
    import sys

    from reconciler.backends.pip_failures import checked_install, resolution_refusal
    from reconciler.backends.process import run
    from reconciler.errors import BackendError

    proc = run([sys.executable, "-c", "import os, signal, sys; " + code])
    assert (proc.stdout, proc.stderr) == ("", "")
    python = tmp_path / "env" / "bin" / "python"
    with pytest.raises(BackendError) as caught:
        checked_install(proc, "uv", python)
    assert caught.value.message == f"uv install into {tmp_path / 'env'} failed: {said}"
    with pytest.raises(BackendError) as caught:
        resolution_refusal(proc, "uv dry run")
    assert caught.value.message == f"uv dry run failed ({said})"


def test_a_killed_resolver_is_an_error_not_a_refusal(tmp_path: Path) -> None:
    """What a resolver printed before it was interrupted is not its answer."""
    import sys

    from reconciler.backends.pip_failures import resolution_refusal
    from reconciler.backends.process import run
    from reconciler.errors import BackendError

    code = "print('No solution found when resolving', file=sys.stderr, flush=True); "
    proc = run([sys.executable, "-c", "import os, signal, sys; " + code + _DIE.format(sig=2)])
    assert proc.returncode == -2
    with pytest.raises(BackendError) as caught:
        resolution_refusal(proc, "uv dry run")
    assert caught.value.message == (
        "uv dry run failed (killed by SIGINT (an interrupt: Ctrl-C, or a notebook's stop "
        "button)): No solution found when resolving"
    )


@pytest.mark.parametrize(
    "said",
    ["Traceback (most recent call last):\n  ...\nKeyboardInterrupt",
     "ERROR: Operation cancelled by user"],
)  # fmt: skip
def test_a_python_installer_that_caught_the_interrupt_says_so(tmp_path: Path, said: str) -> None:
    """pip interrupted in its start-up (Python's own traceback) or in its work (pip's
    message) exits 1 rather than dying of SIGINT: still an interrupt, said as one."""
    import sys

    from reconciler.backends.pip_failures import checked_install
    from reconciler.backends.process import run
    from reconciler.errors import BackendError

    code = f"import sys; sys.stderr.write({said!r} + '\\n'); sys.exit(1)"
    proc = run([sys.executable, "-c", code])
    with pytest.raises(BackendError) as caught:
        checked_install(proc, "pip", tmp_path / "env" / "bin" / "python")
    assert caught.value.message == (
        f"pip install into {tmp_path / 'env'} failed: interrupted (Ctrl-C, or a notebook's "
        "stop button), exit 1"
    )


def test_work_that_overlaps_a_process_starts_once_it_runs(tmp_path: Path) -> None:
    """The clash check's preparation starts once the preview's process has started (issue
    13: not before, holding up the start); once, not for later processes, never outside the
    block, and a failing start leaves the process to finish as it would."""
    import sys

    from reconciler.backends.process import run, when_started

    seen: list[tuple[int, int]] = []

    def started(ended: bool) -> None:
        assert not ended  # run() tells of a process it has just started
        seen.append(os.waitpid(-1, os.WNOHANG))  # (0, 0): a child runs; none is done

    with when_started(started):
        assert run([sys.executable, "-c", "import time; time.sleep(0.5)"]).returncode == 0
        assert run([sys.executable, "-c", "pass"]).returncode == 0
    assert seen == [(0, 0)]
    assert run([sys.executable, "-c", "pass"]).returncode == 0
    assert seen == [(0, 0)]

    def failing(ended: bool) -> None:
        raise RuntimeError("can't start new thread")

    with when_started(failing):
        proc = run([sys.executable, "-c", "print('done')"])
    assert (proc.returncode, proc.stdout) == (0, "done\n")


def test_a_constraint_pins_by_arbitrary_equality_only_what_is_not_pep_440() -> None:
    """The constraints file's pins (``name==v``, or ``name===v`` for a conda-style version):
    a plain release is known to be PEP 440 without packaging; the answer is packaging's."""
    from packaging.version import InvalidVersion, Version

    from reconciler.plan.policy import _pin

    def pep440(text: str) -> bool:
        try:
            Version(text)
        except InvalidVersion:
            return False
        return True

    cases = ["1", "1.26.4", "01.2", "2024.06.01", "1.2.3.4.5.6", "1.2a1", "1.0+cpu", "v1.0"]
    cases += ["", ".", "1.", ".1", "1..2", "1_2", " 1.2", "1.2 ", "1.2\n", "²", "٣.1", "9b"]
    for version in cases:
        assert _pin("x", version) == ("x==" if pep440(version) else "x===") + version, version
