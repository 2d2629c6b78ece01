"""The plan property check itself: it must catch a wrong blame and a missing chain."""

from __future__ import annotations

from typing import Any

import pytest

from tests.real.properties import plan_violations, quoted_specifiers

pytestmark = pytest.mark.real


def _plan(*changes: dict[str, Any]) -> dict[str, Any]:
    return {"environments": [{"name": "image", "changes": list(changes)}]}


def _change(name: str, **fields: Any) -> dict[str, Any]:
    base = {"action": "install", "manager": "pip", "name": name, "from": None, "to": "1.0"}
    base.update({"requested": False, "refused": False, "reason": "", "required_by": ["x"]})
    return {**base, **fields}


def test_quoted_specifiers_reads_chains_markers_and_requests() -> None:
    chain = (
        "pytest-cover 3.0.0 requires pytest-cov (>=2.0); pytest-cov 5.0.0 requires pytest >=4.6; "
        "pytest 8.2.2 requires pluggy <2.0,>=1.5; pluggy is managed at 1.0.0"
    )
    assert quoted_specifiers(chain, "pluggy") == ["<2.0,>=1.5"]
    assert quoted_specifiers(chain, "pytest-cov") == [">=2.0"]
    assert quoted_specifiers(chain, "pytest") == [">=4.6"]
    marker = 'b 1.0 requires numpy>=2 (if python_version >= "3.9"); numpy is managed at 1.26.4'
    assert quoted_specifiers(marker, "numpy") == [">=2"]
    assert quoted_specifiers("requested typing_extensions<4 would", "typing-extensions") == ["<4"]
    plain = "pytest 8.2.2 requires packaging; packaging is managed at 21.3"
    assert quoted_specifiers(plain, "packaging") == []


def test_a_blamed_requirement_that_the_managed_version_meets_is_a_violation() -> None:
    wrong = "responses 0.25.3 requires urllib3 <3.0,>=1.25.10; urllib3 is managed at 1.26.19"
    right = "types-requests 2.32.0.20240602 requires urllib3>=2; urllib3 is managed at 1.26.19"
    refused = {"action": "upgrade", "from": "1.26.19", "to": "2.2.2", "refused": True}
    assert plan_violations(_plan(_change("urllib3", **refused, reason=wrong)), {}) == [
        "image: upgrade urllib3: the refusal quotes no requirement that managed urllib3 1.26.19 "
        f"fails (quoted: ['<3.0,>=1.25.10']): {wrong!r}"
    ]
    assert plan_violations(_plan(_change("urllib3", **refused, reason=right)), {}) == []
    both = wrong.replace("; urllib3 is", "; " + right.split(";")[0] + "; urllib3 is")
    assert plan_violations(_plan(_change("urllib3", **refused, reason=both)), {}) == []


def test_an_unrequested_change_without_required_by_is_a_violation() -> None:
    plan = _plan(
        _change("fqdn", required_by=[]),
        _change("jupyter-events", requested=True, required_by=[]),
        _change("pluggy", manager="conda", action="remove", required_by=[]),
    )
    assert plan_violations(plan, {}) == [
        "image: install fqdn: not requested, yet required_by is empty"
    ]
