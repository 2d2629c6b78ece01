"""``reconciler apply`` as real processes: kernels, locks, kill -9, HTTP repositories.

Every apply here is ``python -m reconciler`` in its own process, with the
``isolated`` environment plus ``PYTHONPATH`` set to this checkout. Package
indexes and conda channels are real HTTP servers on 127.0.0.1
(:mod:`tests.support.servers`); nothing leaves the machine.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from jupyter_client.manager import start_new_kernel

from reconciler.state.store import StateStore
from tests.support.envs import make_conda_prefix, make_venv, pip_install, tree_hash
from tests.support.manifests import SITE
from tests.support.servers import StaticServer, build_simple_index, serve
from tests.test_apply import make_kernel_venv, managed_paths, run_python

ROOT = Path(__file__).resolve().parents[1]

#: Takes the environment's lock the way apply does (POSIX lockf) and holds it.
HOLD_LOCK = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("locked", flush=True)
time.sleep(120)
"""


@pytest.fixture
def proc_env(isolated: dict[str, str], tmp_path: Path) -> dict[str, str]:
    """The isolated environment, with this checkout importable.

    uv gets a cache of its own: a wheel cached from an earlier server on the same
    port would skip the (delayed) download these tests rely on.
    """
    return {**isolated, "PYTHONPATH": str(ROOT), "UV_CACHE_DIR": str(tmp_path / "uv-cache")}


@pytest.fixture
def index(wheelhouse: Path, tmp_path: Path) -> Iterator[StaticServer]:
    """The standard wheelhouse as a PEP 503 index over HTTP (``<url>simple/``)."""
    with serve(build_simple_index(wheelhouse, tmp_path / "index")) as server:
        yield server


def _argv(state: Path, *args: str | Path) -> list[str]:
    return [sys.executable, "-m", "reconciler", "--state-dir", str(state), *map(str, args)]


def _run(
    env: dict[str, str], state: Path, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(state, *args), env=env, capture_output=True, text=True, timeout=timeout
    )


def _manifest(
    path: Path,
    environments: dict[str, dict[str, Any]],
    *,
    pip: dict[str, Any],
    channels: Sequence[str] = (),
) -> Path:
    defaults: dict[str, Any] = {"pip": pip}
    if channels:
        defaults["channels"] = list(channels)
    document = {
        "version": 1,
        "defaults": defaults,
        "environments": {
            name: {k: str(v) if isinstance(v, Path) else v for k, v in body.items()}
            for name, body in environments.items()
        },
    }
    path.write_text(yaml.safe_dump(document, sort_keys=False), encoding="utf-8")
    return path


def _journal(state: Path, prefix: Path) -> dict[str, Any] | None:
    path = StateStore(state).env_dir(prefix) / "journal.json"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data


def test_registered_kernel_runs_code_with_the_package_apply_installed(
    tmp_path: Path, wheelhouse: Path, proc_env: dict[str, str], isolated: dict[str, str]
) -> None:
    venv = make_kernel_venv(tmp_path)
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {
            "k": {
                "prefix": venv,
                "pip": ["delta==1.0"],
                "kernel": {"name": "apply-kernel", "display_name": "Python (apply)"},
            }
        },
        pip={"no_index": True, "find_links": [str(wheelhouse)]},
    )
    proc = _run(proc_env, tmp_path / "state", "apply", manifest)
    assert proc.returncode == 0, proc.stdout + proc.stderr

    km, kc = start_new_kernel(kernel_name="apply-kernel", startup_timeout=30)
    try:
        chunks: list[str] = []

        def collect(msg: dict[str, Any]) -> None:
            if msg["header"]["msg_type"] == "stream":
                chunks.append(msg["content"]["text"])

        code = "import delta, sys; print(delta.__version__); print(sys.prefix)"
        reply = kc.execute_interactive(code, timeout=15, output_hook=collect)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    assert "".join(chunks).splitlines() == ["1.0", str(venv)]


def test_two_applies_started_together_serialize(
    tmp_path: Path, index: StaticServer, proc_env: dict[str, str], isolated: dict[str, str]
) -> None:
    venv = make_venv(tmp_path / "venv")
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {"venv": {"prefix": venv, "pip": ["delta"]}},
        pip={"index_url": f"{index.url}simple/"},
    )
    state = tmp_path / "state"
    index.delay = 1.0  # each wheel download: the first apply holds the lock >= 1 s
    results: list[tuple[float, str, int]] = []
    lock = threading.Lock()

    def apply() -> None:
        start = time.monotonic()
        proc = _run(proc_env, state, "apply", manifest)
        with lock:
            results.append((time.monotonic() - start, proc.stdout + proc.stderr, proc.returncode))

    threads = [threading.Thread(target=apply) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert [code for _, _, code in results] == [0, 0], results
    installed = [r for r in results if "Applied 1 environment; log: " in r[1]]
    noop = [r for r in results if r[1].startswith("No changes")]
    assert len(installed) == 1 and len(noop) == 1, results
    assert noop[0][0] >= 1.0  # it waited for the other's lock, then found nothing to do
    wheels = [r.path for r in index.requests() if r.path.endswith(".whl") and r.range is None]
    assert wheels == ["/files/delta-1.1-py3-none-any.whl"]  # downloaded and installed once
    logs = list((state / "logs").glob("apply-*.log"))
    assert len(logs) == 1 and logs[0].read_text().count("+ delta==1.1") == 1
    assert run_python(venv, "import delta; print(delta.__version__)", isolated) == "1.1"


def _delta_venv(tmp_path: Path, wheelhouse: Path) -> tuple[Path, Path]:
    """A venv and a manifest that adds delta to it from the wheelhouse."""
    venv = make_venv(tmp_path / "venv")
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {"venv": {"prefix": venv, "pip": ["delta"]}},
        pip={"no_index": True, "find_links": [str(wheelhouse)]},
    )
    return venv, manifest


def _hold_lock(state: Path, venv: Path) -> subprocess.Popen[str]:
    """Another process holding ``venv``'s lock (as an apply does), once it holds it."""
    lock = StateStore(state).env_dir(venv) / "lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(lock)], stdout=subprocess.PIPE, text=True
    )
    if holder.stdout is None or holder.stdout.readline().strip() != "locked":
        holder.kill()
        holder.wait()
        raise AssertionError("the lock holder did not take the lock")
    return holder


def test_lock_timeout_names_the_holder_and_a_killed_holder_does_not_block(
    tmp_path: Path, wheelhouse: Path, proc_env: dict[str, str], isolated: dict[str, str]
) -> None:
    venv, manifest = _delta_venv(tmp_path, wheelhouse)
    state = tmp_path / "state"
    holder = _hold_lock(state, venv)
    try:
        before = tree_hash(venv)

        start = time.monotonic()
        proc = _run(proc_env, state, "apply", manifest, "--lock-timeout", "1")
        elapsed = time.monotonic() - start

        assert proc.returncode == 1, proc.stdout + proc.stderr
        assert 1.0 <= elapsed < 3.5  # the timeout, plus starting Python
        assert f"pid {holder.pid}" in proc.stderr
        assert tree_hash(venv) == before

        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=10)
        start = time.monotonic()
        proc = _run(proc_env, state, "apply", manifest, "--lock-timeout", "60")
        elapsed = time.monotonic() - start
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert elapsed < 10  # the kernel dropped the dead holder's lock: no waiting
    assert run_python(venv, "import delta; print(delta.__version__)", isolated) == "1.1"


def test_apply_killed_in_its_installer_is_finished_by_the_next_run(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    index: StaticServer,
    proc_env: dict[str, str],
    isolated: dict[str, str],
) -> None:
    hybrid = make_conda_prefix(tmp_path / "hybrid", channel, ["libfoo ==1.0"], hybrid=True)
    pip_install(hybrid, ["alpha==1.0"], wheelhouse)
    managed = managed_paths(hybrid)
    image = tree_hash(*managed)
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {"hybrid": {"prefix": hybrid, "conda": ["condaonly"], "pip": ["delta"]}},
        pip={"index_url": f"{index.url}simple/"},
        channels=[channel.resolve().as_uri()],
    )
    state = tmp_path / "state"
    index.delay = 60.0  # the installer waits for its wheel until it is killed
    killed = subprocess.Popen(
        _argv(state, "apply", manifest),
        env=proc_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the apply and its uv
    )
    try:
        deadline = time.monotonic() + 30
        # The journal says "pip" and uv is downloading the wheel: kill the apply there.
        while not (
            (journal := _journal(state, hybrid)) is not None
            and journal["step"] == "pip"
            and any(r.path.endswith(".whl") and r.range is None for r in index.requests())
        ):
            assert killed.poll() is None and time.monotonic() < deadline, journal
            time.sleep(0.02)
        os.killpg(killed.pid, signal.SIGKILL)
    finally:
        if killed.poll() is None:
            os.killpg(killed.pid, signal.SIGKILL)
        killed.wait(timeout=10)
    journal = _journal(state, hybrid)
    assert journal is not None and (journal["status"], journal["step"]) == ("running", "pip")
    assert not list((hybrid / SITE).glob("delta*"))  # interrupted before delta was installed
    assert (hybrid / "conda-meta" / "condaonly-1.1-0.json").is_file()  # the conda step ran

    index.delay = 0.0
    proc = _run(proc_env, state, "apply", manifest)

    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"(pid {killed.pid}) did not finish (last step: pip)" in proc.stdout
    journal = _journal(state, hybrid)
    assert journal is not None and journal["status"] == "done"
    assert tree_hash(*managed) == image
    assert run_python(hybrid, "import delta; print(delta.__version__)", isolated) == "1.1"
    owned = json.loads((StateStore(state).env_dir(hybrid) / "owned.json").read_text())
    assert {k: v["version"] for k, v in owned["packages"].items()} == {
        "conda:condaonly": "1.1",
        "pip:delta": "1.1",
    }
    baseline = json.loads((StateStore(state).env_dir(hybrid) / "baseline.json").read_text())
    assert "conda:condaonly" not in baseline["packages"]  # captured before the killed run


def test_http_index_with_credentials_and_http_channel_never_leak_the_secret(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    index: StaticServer,
    proc_env: dict[str, str],
    isolated: dict[str, str],
) -> None:
    hybrid = make_conda_prefix(tmp_path / "hybrid", channel, ["libfoo ==1.0"], hybrid=True)
    state = tmp_path / "state"
    plan_file = tmp_path / "plan.json"
    with serve(channel) as conda_server:
        settings = {"index_url": index.url_with("user:secret", "simple/")}
        body = {"prefix": hybrid, "conda": ["condaonly"], "pip": ["delta"]}
        manifest = _manifest(
            tmp_path / "manifest.yaml",
            {"hybrid": body},
            pip=settings,
            channels=[conda_server.url],
        )
        missing = _manifest(
            tmp_path / "missing.yaml",
            {"hybrid": {**body, "pip": ["no-such-package"]}},
            pip=settings,
            channels=[conda_server.url],
        )
        runs = [
            _run(proc_env, state, "plan", manifest, "--out", plan_file),
            _run(proc_env, state, "apply", manifest),
            _run(proc_env, state, "plan", missing),  # an installer error, with its message
        ]
        conda_requests = [r.path for r in conda_server.requests()]

    assert [r.returncode for r in runs] == [0, 0, 1], [r.stdout + r.stderr for r in runs]
    assert "no-such-package" in runs[2].stderr
    for proc in runs:
        assert "secret" not in proc.stdout + proc.stderr
    assert "secret" not in plan_file.read_text()
    files = [p for p in state.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"journal.json", "owned.json", "baseline.json"}
    logs = [p for p in files if p.suffix == ".log"]
    assert logs and "--index-url http://***@127.0.0.1:" in logs[0].read_text()
    for path in files:
        assert b"secret" not in path.read_bytes(), path
    # The credentials were really used, and both packages came over HTTP.
    basic = "Basic " + base64.b64encode(b"user:secret").decode()
    assert any(r.authorization == basic for r in index.requests())
    assert "/files/delta-1.1-py3-none-any.whl" in [r.path for r in index.requests()]
    assert "/noarch/condaonly-1.1-0.tar.bz2" in conda_requests
    record = json.loads((hybrid / "conda-meta" / "condaonly-1.1-0.json").read_text())
    assert record["channel"].startswith(f"http://127.0.0.1:{conda_server.port}")
    assert run_python(hybrid, "import delta; print(delta.__version__)", isolated) == "1.1"


def test_installer_of_a_killed_apply_keeps_the_environment_locked(
    tmp_path: Path,
    wheelhouse: Path,
    channel: Path,
    index: StaticServer,
    proc_env: dict[str, str],
    isolated: dict[str, str],
) -> None:
    """Only the apply is killed; its uv goes on. The next apply must wait for that uv
    (it inherited the environment's flock) instead of racing it, then converge."""
    hybrid = make_conda_prefix(tmp_path / "hybrid", channel, ["libfoo ==1.0"], hybrid=True)
    managed = managed_paths(hybrid)
    image = tree_hash(*managed)
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {"hybrid": {"prefix": hybrid, "pip": ["delta"]}},
        pip={"index_url": f"{index.url}simple/"},
    )
    state = tmp_path / "state"
    index.delay = 4.0  # the orphaned uv finishes its download 4 s after the kill
    killed = subprocess.Popen(
        _argv(state, "apply", manifest), env=proc_env, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not (
        (journal := _journal(state, hybrid)) is not None
        and journal["step"] == "pip"
        and any(r.path.endswith(".whl") and r.range is None for r in index.requests())
    ):
        assert killed.poll() is None and time.monotonic() < deadline, journal
        time.sleep(0.02)
    killed.kill()  # the apply only: its uv child keeps running
    killed.wait(timeout=10)

    began = time.monotonic()
    proc = _run(proc_env, state, "apply", manifest)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert time.monotonic() - began > 1.5  # it waited for the leftover uv
    assert f"(pid {killed.pid}) did not finish (last step: pip)" in proc.stdout
    assert "install pip delta" not in proc.stdout  # the leftover uv had installed it
    assert run_python(hybrid, "import delta; print(delta.__version__)", isolated) == "1.1"
    owned = json.loads((StateStore(state).env_dir(hybrid) / "owned.json").read_text())
    assert owned["packages"]["pip:delta"]["version"] == "1.1"
    assert tree_hash(*managed) == image


@pytest.mark.parametrize("pidfd", [True, False], ids=["pidfd", "no-pidfd"])
def test_a_background_parent_returns_its_childs_exit_code_or_none_past_its_wait(
    pidfd: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``apply --background --wait S`` waits for the detached apply's exit itself (a pidfd,
    or Popen's wait where Linux has none), not for the next of a fixed series of polls."""
    from reconciler.apply import background
    from reconciler.apply.background import _wait

    if pidfd:

        def no_sleep(seconds: float) -> None:
            raise AssertionError(f"a poll loop slept {seconds} s")

        monkeypatch.setattr(background.time, "sleep", no_sleep)  # woken by the exit itself
    else:
        monkeypatch.delattr(os, "pidfd_open", raising=False)
    quick = subprocess.Popen([sys.executable, "-c", "import sys; sys.exit(3)"])
    assert _wait(quick.pid, 1e9) == 3  # far past poll's milliseconds (~24.8 days)
    killed = subprocess.Popen([sys.executable, "-c", "import os; os.kill(os.getpid(), 9)"])
    assert _wait(killed.pid, 60.0) == -9
    slow = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert _wait(slow.pid, 0.0) is None
        assert _wait(slow.pid, 0.3) is None
        assert slow.poll() is None  # still running: the parent only stops waiting
    finally:
        slow.kill()
        slow.wait()


@pytest.mark.parametrize("stdin", ["open", "closed"])
def test_a_background_apply_outlives_its_caller_without_holding_the_callers_output(
    stdin: str,
    tmp_path: Path,
    wheelhouse: Path,
    proc_env: dict[str, str],
    isolated: dict[str, str],
) -> None:
    """``apply --background --wait 0`` while another apply holds the environment's lock:
    the caller returns at once and its output ends with it (the lifecycle script's
    ``| tee`` must not wait for the detached apply: no descriptor of the caller is kept,
    not even one past the standard streams), the apply waits for the lock in its own
    session, then finishes, its output in its log (also when the caller's stdin was
    closed, so that the log's descriptor could have been 0)."""
    import select

    venv, manifest = _delta_venv(tmp_path, wheelhouse)
    state = tmp_path / "state"
    holder = _hold_lock(state, venv)
    read, write = os.pipe()
    extra = os.dup(write)  # another descriptor of the caller's output, past 2
    try:
        caller = subprocess.Popen(
            _argv(state, "apply", manifest, "--background", "--wait", "0"),
            env=proc_env, stdout=write, stderr=write, pass_fds=(extra,),
            stdin=subprocess.DEVNULL if stdin == "open" else None,
            preexec_fn=(lambda: os.close(0)) if stdin == "closed" else None,
        )  # fmt: skip
        os.close(write)
        os.close(extra)
        said, deadline = b"", time.monotonic() + 30
        while time.monotonic() < deadline and select.select([read], [], [], 1)[0]:
            chunk = os.read(read, 65536)
            if not chunk:
                break  # the end of the caller's output: nobody holds it any more
            said += chunk
        else:
            raise AssertionError(f"the caller's output did not end: {said!r}")
        assert caller.wait(timeout=10) == 0, said
        assert b"apply continues in the background" in said
        pid = json.loads((state / "status.json").read_text())["pid"]
        os.kill(pid, 0)  # still running: waiting for the lock
        assert os.getsid(pid) == pid != os.getsid(0)  # its own session
    finally:
        os.close(read)
        holder.kill()
        holder.wait()
    deadline = time.monotonic() + 60
    while json.loads((state / "status.json").read_text())["state"] == "running":
        assert time.monotonic() < deadline, (state / "status.json").read_text()
        time.sleep(0.1)
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "finished", status
    [console] = (state / "logs").glob("background-*.log")
    assert "install pip delta" in console.read_text()
    assert run_python(venv, "import delta; print(delta.__version__)", isolated) == "1.1"


def _background_call(
    script: str, state: Path, manifest: Path, env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    """``python -c SCRIPT apply MANIFEST --background --wait 60`` (SCRIPT ends in
    :func:`reconciler.entry.run`), checked: it returned 0 with the apply's output."""
    proc = subprocess.run(
        [sys.executable, "-c", script, "--state-dir", str(state), "apply", str(manifest),
         "--background", "--wait", "60"],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "install pip delta" in proc.stdout, proc.stdout + proc.stderr
    return proc


def test_a_background_call_whose_children_are_reaped_for_it_still_returns(
    tmp_path: Path, wheelhouse: Path, proc_env: dict[str, str]
) -> None:
    """With SIGCHLD ignored (the kernel reaps the detached apply), the exit code is
    lost: the call prints the apply's output and returns 0, as subprocess says; the
    apply itself still waits for its installers."""
    _venv, manifest = _delta_venv(tmp_path, wheelhouse)
    script = (
        "import signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
        "from reconciler.entry import run; sys.argv[0] = 'reconciler'; run()"
    )
    state = tmp_path / "state"
    _background_call(script, state, manifest, proc_env)


@pytest.mark.parametrize("why", ["a thread runs", "not the console script", "streams"])
def test_the_detached_apply_is_spawned_where_a_fork_would_copy_what_is_not_its_own(
    why: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Forking copies the caller's threads' locks, an embedding caller's streams and
    exit handlers: there the detached apply is a new Python, as before."""
    import io
    import threading

    from reconciler import entry
    from reconciler.apply.background import _forked

    monkeypatch.setattr(entry, "RUNNING_AS_SCRIPT", why != "not the console script")
    if why == "streams":
        monkeypatch.setattr(sys, "stdout", io.StringIO())
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    if why == "a thread runs":
        other.start()
    try:
        assert _forked(["--version"], tmp_path / "console.log", tmp_path / "state") is None
    finally:
        stop.set()
        if other.is_alive():
            other.join()
    assert not (tmp_path / "console.log").exists()


def test_a_forked_apply_runs_only_once_its_caller_wrote_its_status(
    tmp_path: Path, wheelhouse: Path, proc_env: dict[str, str]
) -> None:
    """The caller writes the apply's first status (running, its pid) as soon as it has
    forked it, and the apply starts only then: a caller that is not scheduled again for
    a while (a loaded machine; here 4 s, unless the apply ends first) writes nothing
    over what the apply wrote, and its status is there once it returns. Meanwhile the
    apply is already out of the caller's session (a signal to the caller's group does
    not reach it)."""
    venv, manifest = _delta_venv(tmp_path, wheelhouse)
    script = (
        "import os, sys, time\n"
        "_fork = os.fork\n"
        "def fork():\n"
        "    pid = _fork()\n"
        "    if pid:\n"
        "        deadline = time.monotonic() + 4\n"
        "        while time.monotonic() < deadline:\n"
        "            with open(f'/proc/{pid}/stat') as f:\n"
        "                if f.read().rpartition(')')[2].split()[0] == 'Z':\n"
        "                    break  # the apply ended\n"
        "            time.sleep(0.01)\n"
        "        print('own session:', os.getsid(pid) == pid, file=sys.stderr)\n"
        "    return pid\n"
        "os.fork = fork\n"
        "from reconciler.entry import run\n"
        "sys.argv[0] = 'reconciler'\n"
        "run()\n"
    )
    state = tmp_path / "state"
    proc = _background_call(script, state, manifest, proc_env)
    assert "own session: True" in proc.stderr, proc.stderr
    status = json.loads((state / "status.json").read_text())
    assert status["state"] == "finished", status
    assert run_python(venv, "import delta; print(delta.__version__)", proc_env) == "1.1"


@pytest.mark.parametrize("ending", ["without teardown", "with a thread running"])
def test_the_wait_after_py_rattler_is_only_for_an_interpreter_that_is_finalized(
    ending: str, tmp_path: Path, channel: Path, proc_env: dict[str, str]
) -> None:
    """A plan that solved with py-rattler waits SETTLE_SECONDS at exit only when the
    interpreter is then finalized (a thread still running: Python's own exit), where
    py-rattler's tokio threads could touch it; ending as every command ends, with
    ``os._exit`` once the exit handlers ran, it does not wait. The plan says the same."""
    from reconciler.backends.conda import SETTLE_SECONDS

    prefix = make_conda_prefix(tmp_path / "env", channel, ["libfoo ==1.0"])
    manifest = _manifest(
        tmp_path / "manifest.yaml",
        {"env": {"prefix": prefix, "conda": ["condaonly"]}},
        pip={}, channels=[channel.resolve().as_uri()],
    )  # fmt: skip
    waits = tmp_path / "waits.txt"
    script = (
        "import sys, threading, time\n"
        "_sleep = time.sleep\n"
        "def sleep(seconds):\n"
        f"    with open({str(waits)!r}, 'a') as f:\n"
        "        f.write(f'{seconds}\\n')\n"
        "    _sleep(seconds)\n"
        "time.sleep = sleep\n"
        + ("threading.Thread(target=threading.main_thread().join).start()\n"
           if ending == "with a thread running" else "")  # alive until Python's exit
        + "from reconciler.entry import run\n"
        "sys.argv[0] = 'reconciler'\n"
        "run()\n"
    )  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-c", script, "--state-dir", str(tmp_path / "state"), "plan",
         str(manifest)],
        env=proc_env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "+ install conda condaonly" in proc.stdout, proc.stdout
    said = waits.read_text().split() if waits.exists() else []
    assert said.count(str(SETTLE_SECONDS)) == (ending == "with a thread running"), said
