"""The README says what the tool does: its commands table renders and lists every command,
its quick start runs the tool itself, its shell lines survive the user's shell, and each
``manifests/invalid/`` file starts with exactly what ``reconciler validate`` prints for it."""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from reconciler.cli import _parser, main

REPO = Path(__file__).resolve().parent.parent
README = (REPO / "README.md").read_text(encoding="utf-8")
INVALID = sorted((REPO / "manifests" / "invalid").glob("*.yaml"))


def _section(title: str) -> list[str]:
    lines = README.splitlines()
    start = lines.index(title)
    end = next((i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines))
    return lines[start + 1 : end]


def _commands() -> set[str]:
    parser = _parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return set(sub.choices)


def test_commands_table_is_one_table_listing_every_command() -> None:
    lines = _section("## Commands")
    rows = [i for i, line in enumerate(lines) if line.startswith("|")]
    # A blank line inside a Markdown table ends it: the rows after it would not render.
    assert rows == list(range(rows[0], rows[0] + len(rows)))
    documented = {re.match(r"\| `(\w[\w-]*)", lines[i]).group(1) for i in rows[2:]}  # type: ignore[union-attr]
    assert _commands() <= documented, sorted(_commands() - documented)


def test_quick_start_runs_the_tool_and_ci_runs_its_test_command() -> None:
    blocks = re.findall(r"```sh\n(.*?)```", "\n".join(_section("## Quick start")), re.S)
    commands = [line for block in blocks for line in block.splitlines() if line and line[0] != "#"]
    assert commands[:2] == [
        "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/reconciler demo",
        ".venv/bin/python -m pytest",
    ]
    # Nothing assumes an activated venv.
    for line in commands[2:]:
        assert line.startswith((".venv/bin/", "export ")), line
    assert "Try `reconciler" not in README
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert ".venv/bin/python -m pytest" in ci


def test_home_paths_for_studio_are_quoted_against_the_local_shell() -> None:
    # Unquoted, `~/x` is expanded by the shell that runs `reconciler lifecycle`, not on Studio.
    assert re.findall(r"--(?:manifest-path|wheel) ~", README) == []


@pytest.mark.parametrize("invalid", INVALID, ids=lambda p: p.name)
def test_invalid_manifest_header_is_what_validate_prints(
    invalid: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(REPO)
    given = str(invalid.relative_to(REPO))
    text = invalid.read_text(encoding="utf-8")
    header = [
        line[len("# error: ") :] for line in text.splitlines() if line.startswith("# error: ")
    ]
    assert header, f"{invalid.name} has no '# error: ' line"
    assert "{tmp}" not in text  # a placeholder is not what validate prints

    assert main(["validate", given]) == 1
    printed = capsys.readouterr().err.splitlines()
    assert printed[0].startswith("error: ") and printed[-1].startswith("  hint: ")
    assert [printed[0][len("error: ") :], *printed[1:-1]] == [
        line.replace("{file}", given) for line in header
    ]
