"""Fault tests: the session summary (hostile inputs rejected) and Hypothesis's storage.

Hypothesis caches what it learns (examples, constants of the code under test)
under ``./.hypothesis``; for these tests it goes to a temporary directory
instead, so a run leaves nothing in the checkout.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from tests.faults.guards import summary_lines

_STORAGE: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    """Point Hypothesis's storage at a temporary directory (before collection uses it)."""
    try:
        from hypothesis.configuration import set_hypothesis_home_dir
    except ImportError:  # pragma: no cover - the dev interpreter has it
        return
    _STORAGE.append(tempfile.mkdtemp(prefix="reconciler-faults-hypothesis-"))
    set_hypothesis_home_dir(_STORAGE[-1])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Remove the temporary Hypothesis storage."""
    while _STORAGE:
        shutil.rmtree(_STORAGE.pop(), ignore_errors=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print ``hostile inputs rejected: N`` with its breakdown when any were checked."""
    lines = summary_lines()
    if lines:
        terminalreporter.section("reliability and security")
        for line in lines:
            terminalreporter.write_line(line)
