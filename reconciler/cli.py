"""Command line. The only module that prints or exits; errors become messages and exit codes.

Exit codes (SPEC): 0 success, nothing pending; 1 error; 2 with --detailed-exitcode
only: changes pending (plan) or drift found (drift); 3 refused.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from reconciler.cli_args import parse_arguments
from reconciler.errors import ReconcilerError

TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse  # a plain plan or apply is read without it (reconciler.cli_args)
    from typing import Any

__all__ = ["main"]

EXIT_OK, EXIT_ERROR, EXIT_PENDING, EXIT_REFUSED = 0, 1, 2, 3


def _parser(*, lazy: bool = False) -> argparse.ArgumentParser:
    """The full parser; ``lazy``: only the parsed command gets its arguments (:func:`main`)."""
    from reconciler.cli_parser import build_parser

    return build_parser(
        {
            "validate": _validate,
            "plan": _plan,
            "apply": _apply,
            "lock": _lock,
            "lifecycle": _lifecycle,
            "bundle": _bundle,
            "demo": _demo,
            "status": _status,
            "drift": _drift,
            "baseline": _baseline,
            "edit": _edit,
        },
        lazy=lazy,
    )


def _store(args: argparse.Namespace) -> Any:
    from reconciler.state.store import StateStore, default_state_dir

    root = args.state_dir.expanduser() if args.state_dir else default_state_dir()
    # Absolute: the paths it gives (logs in `status`) must work from any directory.
    return StateStore(Path(os.path.abspath(root)))


def _load(path: Path, store: Any = None, envs: Sequence[str] = ()) -> Any:
    """Load the manifest; with a store, pure checks that passed before are not redone.

    ``envs`` (``--env NAME...``) must name environments of the manifest: an unknown
    name fails here, before anything is read or written (not even the memo).
    """
    manifest, memo = _load_with_memo(path, store, envs)
    if memo is not None:
        store.save_validation_memo(memo)
    return manifest


def _load_with_memo(path: Path, store: Any, envs: Sequence[str]) -> tuple[Any, Any]:
    """:func:`_load` that leaves saving the memo to the caller (a refused apply does not)."""
    from reconciler.manifest import load_manifest, select_environments

    memo = store.validation_memo() if store is not None else None
    manifest = load_manifest(path, memo=memo)
    select_environments(manifest, envs)
    return manifest, memo


def _lines(text: str) -> str:
    """``text`` as one or more whole lines: what :func:`_out` writes."""
    return text if text.endswith("\n") else text + "\n"


def _out(text: str) -> None:
    sys.stdout.write(_lines(text))


def _validate(args: argparse.Namespace) -> int:
    manifest = _load(args.manifest)
    n = len(manifest.environments)
    if not args.quiet:
        _out(f"{args.manifest}: valid ({n} environment{'s' if n != 1 else ''})")
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    store = _store(args)
    manifest = _load(args.manifest, store, args.env)
    if args.on_manifest is not None:
        args.on_manifest(manifest)
    from reconciler.lockfile import has_lock_file

    locked = args.locked or has_lock_file(manifest.path)  # without one, use_lock changes nothing
    if not locked:
        _speculate_edited(manifest, args.env)
    from reconciler.plan.planner import Backends, build_plan, read_inputs
    from reconciler.render.progress import resolving
    from reconciler.render.text import plan_summary, plan_text

    cache = store.read_cache()
    try:
        inputs = read_inputs(manifest, store, args.env, cache=cache)
        if locked:
            from reconciler.lockfile.resolver import use_lock

            inputs = use_lock(manifest, inputs, required=args.locked)
        backends = Backends.default(store.root / "cache")
        with resolving(sys.stderr, inputs, show=not args.quiet):
            plan = build_plan(manifest, inputs, backends)
        keep_prepared = getattr(backends.wheels, "keep_prepared", None)
        if keep_prepared is not None:
            keep_prepared()  # the wheel tags worked out beside a preview no wheel read needed
    finally:
        store.save_read_cache(cache)  # with the requirement answers the plan added
    if args.out:
        from reconciler.state.store import write_json_atomic

        write_json_atomic(args.out, plan.to_json())
    color = not args.json and _color(sys.stdout)
    if args.json:
        written = _lines(json.dumps(plan.to_json(), indent=2))
    elif args.quiet:
        written = _lines(plan_summary(plan, color=color))
    else:
        written = _lines(
            plan_text(plan, verbose=args.verbose, color=color, kernels=_kernels(manifest))
        )
    _out(written)
    if args.on_plan is not None:
        args.on_plan(plan, written)  # the entry point's no-op fast path remembers it
    if plan.refused:
        return EXIT_REFUSED
    if args.detailed_exitcode and plan.pending:
        return EXIT_PENDING
    return EXIT_OK


def _speculate_edited(manifest: Any, envs: Sequence[str]) -> None:
    """Start the dry runs of a manifest just edited from those recorded for its
    environments (:func:`reconciler.backends.speculative.begin_edited`), before the
    planner is imported and the environments read; derived work: a failure changes
    nothing."""
    from reconciler.backends import speculative
    from reconciler.backends.pip_args import repository_args
    from reconciler.manifest.model import pip_requests, select_environments

    with contextlib.suppress(Exception):
        speculative.begin_edited(
            {
                str(env.prefix / "bin" / "python"): (
                    repository_args(env.pip_settings, uv=True),
                    [r.requirement for r in pip_requests(env)],
                )
                for env in select_environments(manifest, envs)
                if env.pip or env.kernel is not None
            }
        )


def _color(stream: Any) -> bool:
    from reconciler.render.text import use_color

    return use_color(stream, os.environ)


def _kernels(manifest: Any) -> dict[str, str]:
    """Kernel name -> display name, for ``+ register kernel tools (Python 3 (tools))``."""
    return {e.kernel.name: e.kernel.display_name for e in manifest.environments if e.kernel}


def _apply(args: argparse.Namespace) -> int:
    store = _store(args)
    saved = None
    manifest_path = args.manifest
    if args.plan is not None:
        from reconciler.apply.saved import read_plan_file

        saved = read_plan_file(args.plan)
        manifest_path = manifest_path or Path(saved.manifest_path)
    if manifest_path is None:
        raise ReconcilerError(
            "apply needs a MANIFEST or --plan FILE", hint="reconciler apply manifest.yaml"
        )
    manifest, memo = _load_with_memo(manifest_path, store, args.env)
    if args.on_manifest is not None:
        args.on_manifest(manifest)
    if args.background:
        store.save_validation_memo(memo)
        from reconciler.apply.background import child_args, start_background

        return start_background(store.root, child_args(args, manifest_path), args.wait, _out)
    from reconciler.lockfile import has_lock_file

    if saved is None and not (args.locked or has_lock_file(manifest.path)):
        _speculate_edited(manifest, args.env)
    # Not before: the lifecycle script's background parent plans nothing (its child does).
    from reconciler.apply.execute import apply
    from reconciler.apply.status import StatusReporter, status_path
    from reconciler.plan.planner import Backends
    from reconciler.render.progress import ConsoleReporter, new_log_path
    from reconciler.render.text import apply_summary, noop_line, plan_text

    log_path = new_log_path(store.root)
    reporter = StatusReporter(
        status_path(store.root),
        ConsoleReporter(
            sys.stderr if args.json else sys.stdout, quiet=args.quiet, stamps=not args.notebook
        ),
        log=str(log_path),
        eager=args.detached,
    )
    try:
        from reconciler.plan.pip_side import LaterNotes
        from reconciler.values import replace

        # The held-back notes are shown with the outcome, after the installs: what is
        # newest is asked while they run (and waited for, whatever happens).
        later = LaterNotes()
        backends = replace(Backends.default(store.root / "cache"), later=later)
        try:
            result = apply(
                manifest,
                store,
                backends,
                names=args.env,
                partial=args.partial,
                saved=saved,
                lock_timeout=args.lock_timeout,
                reporter=reporter,
                log=log_path,
                locked=args.locked,
            )
        finally:
            later.close()  # (a plan that failed, or an apply stopped: its questions)
    except ReconcilerError as exc:
        store.save_validation_memo(memo)
        reporter.finish("failed", {}, error=str(exc))
        raise
    changed = any(r.status == "done" for r in result.results)
    # A refused apply leaves the state dir as it was, except the status file, which
    # must show this apply (the refusal), not the one before.
    refused_only = result.refused and not changed and not result.failed
    if not refused_only:
        store.save_validation_memo(memo)
    reporter.finish(
        "failed" if result.failed else "refused" if refused_only else "finished",
        {r.name: (r.status, r.message) for r in result.results},
    )
    log = log_path if log_path.exists() else None
    plan = result.plan
    if args.json:
        doc = plan.to_json()
        status = {r.name: r for r in result.results}
        for env in doc["environments"]:
            outcome = status[env["name"]]
            env["result"] = {"status": outcome.status, "message": outcome.message}
            for change in env["changes"]:
                # Each change shares its environment's outcome: an environment is one
                # transaction; refused changes are never executed.
                change["result"] = "refused" if change["refused"] else outcome.status
        doc["log"] = str(log) if log else None
        _out(json.dumps(doc, indent=2))
    elif not plan.pending:
        _out(noop_line(len(plan.environments)))
    else:
        if not args.quiet:
            _out(
                plan_text(
                    plan,
                    verbose=args.verbose,
                    partial=args.partial,
                    color=_color(sys.stdout),
                    kernels=_kernels(manifest),
                )
            )
        for r in result.results:
            if r.status in ("failed", "refused", "skipped"):
                _out(f"{r.name}: {r.status}" + (f": {r.message}" if r.message else ""))
        _out(apply_summary(result, log))
    if result.failed:
        return EXIT_ERROR
    if result.refused:
        return EXIT_REFUSED
    return EXIT_OK


def _lock(args: argparse.Namespace) -> int:
    from reconciler.lockfile.writer import upgrade_from_args, write_lock

    store = _store(args)
    manifest = _load(args.manifest, store, args.env)
    upgrade = upgrade_from_args(args.upgrade, args.upgrade_package)
    _out(write_lock(manifest, store, args.env, upgrade).text(quiet=args.quiet))
    return EXIT_OK


def _lifecycle(args: argparse.Namespace) -> int:
    from reconciler.lifecycle import LifecycleOptions, encode, render

    manifest = _load(args.manifest)  # refuse to embed a manifest that does not validate
    options = LifecycleOptions(
        budget=args.budget,
        embed=args.manifest_path is None,
        manifest_path=args.manifest_path,
        index_url=args.index_url,
        wheel=args.wheel,
        python=args.python,
        locked=args.locked,
    )
    text = manifest.path.read_text(encoding="utf-8") if options.embed else ""
    from reconciler.lockfile.writer import embedded_lock

    lock = embedded_lock(manifest.path, embed=options.embed, locked=options.locked)
    script = render(text, str(args.manifest), options, lock)
    _out(encode(script) if args.base64 else script)
    return EXIT_OK


def _bundle(args: argparse.Namespace) -> int:
    from reconciler.bundle import build_bundle, summary, targets_for

    targets = targets_for(args.python_version, args.platform)
    bundle = build_bundle(
        args.dir.expanduser(), targets, index_url=args.index_url, find_links=args.find_links,
        no_index=args.no_index,
    )  # fmt: skip
    if not args.quiet:
        _out(summary(bundle))
    return EXIT_OK


def _demo(args: argparse.Namespace) -> int:
    from reconciler.demo.build import build_demo, intro, next_steps

    root = args.dir.expanduser().resolve()
    _out(intro(root))
    demo = build_demo(root)
    state = ["--state-dir", str(demo.state_dir)]
    code = main([*state, "-q", "baseline", "capture", str(demo.manifest)])
    if code != EXIT_OK:
        return code
    _out(f"Captured the image's baseline: its packages are now managed.\n\n$ {demo.plan_command}")
    code = main([*state, "plan", str(demo.manifest)])
    if code in (EXIT_OK, EXIT_REFUSED):
        _out(next_steps(demo, refused=code == EXIT_REFUSED))
    return code if code != EXIT_REFUSED else EXIT_OK


def _status(args: argparse.Namespace) -> int:
    from reconciler.apply.status import read_status
    from reconciler.render.text import status_text

    store = _store(args)
    doc = read_status(store.root)
    if args.json:
        _out(json.dumps(doc if doc is not None else {"state": "none"}, indent=2))
    else:
        _out(status_text(doc))
    state = doc.get("state") if doc is not None else None
    return {"failed": EXIT_ERROR, "refused": EXIT_REFUSED}.get(state or "", EXIT_OK)


def _drift(args: argparse.Namespace) -> int:
    from reconciler.plan.drift import Drift, drift_environment
    from reconciler.plan.planner import read_inputs
    from reconciler.render.text import drift_text
    from reconciler.state.files import VerifiedFiles

    store = _store(args)
    manifest = _load(args.manifest, store, args.env)
    inputs = read_inputs(manifest, store, args.env)
    verified = VerifiedFiles.load(store.root / "cache" / "verified-files.json")
    drift = Drift(tuple(drift_environment(i, verified) for i in inputs))
    verified.save()
    if args.json:
        _out(json.dumps(drift.to_json(), indent=2))
    else:
        _out(drift_text(drift, quiet=args.quiet, color=_color(sys.stdout)))
    if args.detailed_exitcode and drift.found:
        return EXIT_PENDING
    return EXIT_OK


def _baseline(args: argparse.Namespace) -> int:
    from reconciler.plan.planner import read_inputs
    from reconciler.render.words import plural

    store = _store(args)
    manifest = _load(args.manifest, store, args.env)
    inputs = read_inputs(manifest, store, args.env, read_baselines=args.action == "show")
    if args.action == "capture":
        shown = _capture(args, store, inputs)
    else:
        shown = {}
        for item in inputs:
            env, recorded = item.env, item.baseline
            shown[env.name] = recorded.to_json() if recorded else None
            if args.json:
                continue
            if recorded is None:
                _out(f"{env.name}: no baseline recorded ({env.prefix})")
                continue
            _out(
                f"{env.name}: {plural(len(recorded.packages), 'managed package')}, captured "
                f"{recorded.captured_at} ({env.prefix})"
            )
            for p in sorted(recorded.packages.values(), key=lambda p: (p["manager"], p["name"])):
                build = f" {p['build']}" if p.get("build") else ""
                _out(f"  {p['manager']:5} {p['name']} {p['version']}{build}")
    if args.json:
        _out(json.dumps({"format_version": "1", "environments": shown}, indent=2))
    return EXIT_OK


def _capture(args: argparse.Namespace, store: Any, inputs: Sequence[Any]) -> dict[str, Any]:
    """``baseline capture``: all or nothing. An existing baseline is replaced only with
    ``--force``; without it, the error says what replacing it would change."""
    from reconciler.errors import StateError
    from reconciler.render.text import baseline_replacement
    from reconciler.render.words import plural
    from reconciler.state.store import Baseline

    captured: list[tuple[Any, Any, Any]] = []  # (env, new baseline, old baseline or None)
    for item in inputs:
        env = item.env
        if not item.state.exists:
            if args.env:
                raise ReconcilerError(
                    f"environment {env.name!r}: {env.prefix} does not exist",
                    hint="create it first (`reconciler apply`)",
                )
            if not args.quiet and not args.json:
                _out(f"{env.name}: {env.prefix} does not exist yet; nothing to capture")
            continue
        try:
            old = store.baseline(env.prefix)
        except StateError:
            old = None  # unreadable: nothing to compare; capturing is how it is repaired
        captured.append((env, Baseline.from_state(item.state, item.owned), old))
    refusals = [
        baseline_replacement(env.name, old, new)
        for env, new, old in captured
        if old is not None and any(old.changes_to(new)) and not args.force
    ]
    if refusals:
        raise ReconcilerError(
            "\n".join(refusals) + "\nnothing was captured",
            hint="packages installed by hand since would become managed (never changed by "
            "reconciler); `reconciler baseline capture --force` replaces the baseline",
        )
    shown: dict[str, Any] = {}
    for env, new, old in captured:
        if old is not None and not any(old.changes_to(new)) and not args.force:
            new = old  # the same managed set: keep the file (and its capture time) as it is
            verb = "baseline unchanged"
        else:
            store.save_baseline(env.prefix, new)
            verb = "baseline replaced" if old is not None else "baseline captured"
        if not args.quiet and not args.json:
            _out(f"{env.name}: {verb}, {plural(len(new.packages), 'managed package')}")
        shown[env.name] = new.to_json()
    return shown


def _edit(args: argparse.Namespace) -> int:
    """``add``, ``remove``, ``adopt`` (:mod:`reconciler.edit_commands`); prints their text."""
    from reconciler.edit_commands import run
    from reconciler.edit_lock import hold_edit_lock

    store = _store(args)

    def waiting(holder: str) -> None:
        sys.stderr.write(
            f"waiting for another add, remove or adopt of {args.manifest} ({holder})\n"
        )
        sys.stderr.flush()

    # Held from reading the manifest to writing it: a second edit plans the first's result.
    with hold_edit_lock(store.root, args.manifest, args.lock_timeout, waiting):
        code, text = run(args, store, _load(args.manifest, store, [args.env] if args.env else []))
    _out(text)
    return code


def main(
    argv: Sequence[str] | None = None,
    *,
    on_plan: Callable[[Any, str], None] | None = None,
    on_manifest: Callable[[Any], None] | None = None,
) -> int:
    """Run the CLI; returns the exit code. ``on_plan(plan, printed)`` is told what ``plan``
    printed, ``on_manifest(manifest)`` the manifest ``plan`` or ``apply`` loaded (see
    :mod:`reconciler.entry`)."""
    args = parse_arguments(argv, {"plan": _plan, "apply": _apply}, lambda: _parser(lazy=True))
    args.on_plan = on_plan
    args.on_manifest = on_manifest
    from reconciler import faults

    faults.clear_stop()  # each command starts unstopped (the magic runs many in one kernel)
    try:
        if getattr(args, "env_prefix", None) is not None:  # the notebook shim's --env-prefix
            from reconciler.edit_commands import env_by_prefix

            env_by_prefix(args, _load(args.manifest, _store(args)))
        code: int = args.func(args)
        return code
    except ReconcilerError as exc:
        sys.stderr.write(f"error: {exc}\n")
        return exc.exit_code
    except KeyboardInterrupt as exc:  # an `add` says what the interrupt left
        sys.stderr.write(f"interrupted: {exc}\n" if str(exc) else "interrupted\n")
        return 130
    except Exception as exc:  # a bug: one line, the traceback only with -v
        if getattr(args, "verbose", False):
            raise
        sys.stderr.write(
            f"error: internal error ({type(exc).__name__}: {exc})\n"
            "  hint: this is a bug in reconciler; run again with -v for the traceback and "
            "report it\n"
        )
        return EXIT_ERROR
    except BrokenPipeError:
        return EXIT_ERROR
