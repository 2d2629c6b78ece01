"""Real-package scenarios on a venv image of 54 PyPI distributions, through the CLI process.

Every plan here is also checked for the refusal/chain properties
(:mod:`tests.support.plan_checks`). Tests named ``test_contract_*`` are issue 9's
new promises (blame, extras chains on pip's report, file clashes, held-back
versions, rebuilt-venv identity), written before the branches that keep them
were merged.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.real.scenario import (
    HELD_BACK,
    HELD_BACK_TEXT,
    Real,
    assert_refused_apply_changes_nothing,
    body,
    held_back_core,
)
from tests.real.stack import SITE, installed_versions, venv_like
from tests.support.envs import pip_install
from tests.test_identity import next_second

pytestmark = pytest.mark.real

#: uv's plan of ``jupyter-events==0.10.0``: name -> required_by (root first). Its
#: ``jsonschema[format-nongpl]`` requirement brings fqdn, isoduration, jsonpointer,
#: uri-template and webcolors through the extra.
JUPYTER_EVENTS = {
    "arrow": ["jupyter-events", "jsonschema", "isoduration"],
    "fqdn": ["jupyter-events", "jsonschema"],
    "isoduration": ["jupyter-events", "jsonschema"],
    "jsonpointer": ["jupyter-events", "jsonschema"],
    "jsonschema": ["jupyter-events"],
    "jsonschema-specifications": ["jupyter-events", "jsonschema"],
    "jupyter-events": [],
    "python-json-logger": ["jupyter-events"],
    "referencing": ["jupyter-events"],
    "rfc3339-validator": ["jupyter-events"],
    "rfc3986-validator": ["jupyter-events"],
    "rpds-py": ["jupyter-events", "jsonschema"],
    "types-python-dateutil": ["jupyter-events", "jsonschema", "isoduration", "arrow"],
    "uri-template": ["jupyter-events", "jsonschema"],
    "webcolors": ["jupyter-events", "jsonschema"],
}
#: The deep chain: pytest-cover -> pytest-cov -> pytest -> pluggy (managed at 1.0.0).
DEEP_REFUSAL = (
    "      refused: pytest-cover 3.0.0 requires pytest-cov>=2.0; pytest-cov 5.0.0 requires "
    "pytest>=4.6; pytest 8.2.2 requires pluggy<2.0,>=1.5; pluggy is managed at 1.0.0"
)


#: Managed packages the direct-refusal test asks to move.
MANAGED_PINS = (("pluggy", "1.0.0"), ("urllib3", "1.26.19"), ("packaging", "21.3"))


def _pin_hint(name: str, version: str) -> str:
    return (
        f"  hint: image: {name} is installed at {version} and reconciler may not change it: "
        f"pin {name}=={version} in the manifest, or remove it"
    )


def test_satisfied_image_packages_plan_nothing(image: Real) -> None:
    code, text, _ = image.plan(["numpy>=1.26,<2", "pandas==2.2.*", "scikit-learn", "ipykernel"])
    assert code == 0
    assert text.splitlines() == [
        f"image ({image.prefix}, venv): up to date",
        "No changes: the environment already matches the manifest.",
    ]


def test_additions_are_installed_offline_and_the_image_stays_byte_identical(image: Real) -> None:
    before = image.managed_hash()
    pip = ["tabulate==0.9.0", "jsonschema==4.22.0"]
    code, text, _ = image.plan(pip)
    assert code == 0
    assert body(text) == [
        "  + install pip jsonschema 4.22.0 (requested)",
        "  + install pip jsonschema-specifications 2023.12.1 (required by jsonschema)",
        "  + install pip referencing 0.35.1 (required by jsonschema)",
        "  + install pip rpds-py 0.18.1 (required by jsonschema)",
        "  + install pip tabulate 0.9.0 (requested)",
        "Plan: 5 to install.",
    ]
    applied = image.apply(pip)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    versions = installed_versions(image.prefix)
    assert (versions["jsonschema"], versions["rpds-py"], versions["tabulate"]) == (
        "4.22.0",
        "0.18.1",
        "0.9.0",
    )
    assert image.managed_hash() == before
    again = image.apply(pip)
    assert again.returncode == 0
    assert len(again.stdout.strip().splitlines()) == 1, again.stdout
    drift = image.run("drift", image.root / "manifest.yaml", "--json")
    assert drift.returncode == 0, drift.stderr
    assert json.loads(drift.stdout)["environments"][0]["findings"] == []


def test_allowed_transitive_installs_through_an_extra_carry_their_chain(image: Real) -> None:
    code, text, document = image.plan(["jupyter-events==0.10.0"])
    assert code == 0
    changes = image.changes(document)
    assert {n: c["required_by"] for n, c in changes.items()} == JUPYTER_EVENTS
    assert all(c["action"] == "install" and not c["refused"] for c in changes.values())
    assert (
        "  + install pip types-python-dateutil 2.9.0.20240316 "
        "(required by arrow <- isoduration <- jsonschema <- jupyter-events)"
    ) in text.splitlines()
    assert text.splitlines()[-1] == "Plan: 15 to install."


def test_a_request_with_an_extra_installs_the_extra_dependencies(image: Real) -> None:
    code, text, _ = image.plan(["bleach[css]==6.1.0"])
    assert code == 0
    assert body(text) == [
        "  + install pip bleach 6.1.0 (requested)",
        "  + install pip tinycss2 1.2.1 (required by bleach)",
        "  + install pip webencodings 0.5.1 (required by bleach)",
        "Plan: 3 to install.",
    ]
    applied = image.run("apply", "--plan", image.root / "plan.json")  # the saved plan, exactly
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert installed_versions(image.prefix)["tinycss2"] == "1.2.1"


def test_a_registered_kernel_runs_the_image_and_the_addition(image: Real) -> None:
    from jupyter_client.manager import start_new_kernel

    kernel = {"name": "real-image", "display_name": "Python 3 (real image)"}
    applied = image.apply(["tabulate==0.9.0"], kernel=kernel)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    km, kc = start_new_kernel(kernel_name="real-image", startup_timeout=60)
    chunks: list[str] = []

    def collect(msg: dict[str, Any]) -> None:
        if msg["header"]["msg_type"] == "stream":
            chunks.append(msg["content"]["text"])

    try:
        code = "import sys, numpy, pandas, tabulate; print(numpy.__version__, pandas.__version__)"
        code += "; print(sys.prefix)"
        reply = kc.execute_interactive(code, timeout=60, output_hook=collect)
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok", reply
    assert "".join(chunks).splitlines() == ["1.26.4 2.2.2", str(image.prefix)]


def test_direct_refusals_quote_the_request_and_apply_changes_nothing(image: Real) -> None:
    pip = ["pluggy>=1.5", "urllib3>=2", "packaging>=22"]
    code, text, document = image.plan(pip)
    assert code == 3
    assert body(text) == [
        "  ! upgrade pip pluggy 1.0.0 -> pluggy>=1.5 (requested)",
        "      refused: requested pluggy>=1.5 would upgrade managed pluggy 1.0.0",
        "  ! upgrade pip urllib3 1.26.19 -> urllib3>=2 (requested)",
        "      refused: requested urllib3>=2 would upgrade managed urllib3 1.26.19",
        "  ! upgrade pip packaging 21.3 -> packaging>=22 (requested)",
        "      refused: requested packaging>=22 would upgrade managed packaging 21.3",
        "Plan: 3 to upgrade; 3 refused (apply would change nothing).",
        *(_pin_hint(name, version) for name, version in MANAGED_PINS),
    ]
    assert document["summary"]["refused"] == 3
    assert_refused_apply_changes_nothing(image, pip)


def test_a_direct_downgrade_is_refused(image: Real) -> None:
    code, text, _ = image.plan(["pluggy==0.13.1"])
    assert code == 3
    assert body(text) == [
        "  ! downgrade pip pluggy 1.0.0 -> pluggy==0.13.1 (requested)",
        "      refused: requested pluggy==0.13.1 would downgrade managed pluggy 1.0.0",
        "Plan: 1 to downgrade; 1 refused (apply would change nothing).",
        _pin_hint("pluggy", "1.0.0"),
    ]


def test_a_transitive_refusal_names_its_chain_and_apply_changes_nothing(image: Real) -> None:
    code, text, document = image.plan(["pytest==8.2.2"])
    assert code == 3
    assert body(text) == [
        "  + install pip iniconfig 2.0.0 (required by pytest)",
        "  ! upgrade pip pluggy 1.0.0 -> 1.5.0",
        "      refused: pytest 8.2.2 requires pluggy<2.0,>=1.5; pluggy is managed at 1.0.0",
        "  + install pip pytest 8.2.2 (requested)",
        "Plan: 2 to install, 1 to upgrade; 1 refused (apply would change nothing).",
        "  hint: image: pytest needs pluggy 1.0.0 to change: remove pytest from the manifest, "
        "or pin a version of pytest that works with it",
    ]
    assert image.changes(document)["pluggy"]["required_by"] == ["pytest"]
    assert_refused_apply_changes_nothing(image, ["pytest==8.2.2"])


def test_two_transitive_refusals_each_name_their_own_request(image: Real) -> None:
    code, text, _ = image.plan(["black==24.4.2", "types-requests==2.32.0.20240602"])
    assert code == 3
    lines = text.splitlines()
    assert "  ! upgrade pip packaging 21.3 -> 24.1" in lines
    assert (
        "      refused: black 24.4.2 requires packaging>=22.0; packaging is managed at 21.3"
    ) in lines
    assert "  ! upgrade pip urllib3 1.26.19 -> 2.2.2" in lines
    assert (
        "      refused: types-requests 2.32.0.20240602 requires urllib3>=2; "
        "urllib3 is managed at 1.26.19"
    ) in lines
    assert "Plan: 5 to install, 2 to upgrade; 2 refused (apply would change nothing)." in lines


def test_a_deep_chain_is_quoted_link_by_link(image: Real) -> None:
    code, text, document = image.plan(["pytest-cover"])
    assert code == 3
    assert DEEP_REFUSAL in text.splitlines()
    pluggy = image.changes(document)["pluggy"]
    assert pluggy["required_by"] == ["pytest-cover", "pytest-cov", "pytest"]
    assert (
        "  + install pip iniconfig 2.0.0 (required by pytest <- pytest-cov <- pytest-cover)"
    ) in text.splitlines()


def test_a_hand_change_to_a_managed_package_is_drift(image: Real) -> None:
    pip_install(image.prefix, ["pluggy==1.5.0"], image.wheels, image.env)
    drift = image.run("drift", image.manifest([]), "--json")
    findings = json.loads(drift.stdout)["environments"][0]["findings"]
    assert [(f["kind"], f["name"], f["expected"], f["actual"]) for f in findings] == [
        ("managed-changed", "pluggy", "1.0.0", "1.5.0")
    ]


# -- contract (issue 9): built on other branches ---------------------------------------------


def test_contract_refusal_blames_the_requirement_that_excludes_the_managed_version(
    image: Real,
) -> None:
    # responses needs urllib3<3.0,>=1.25.10 (1.26.19 is fine); types-requests needs urllib3>=2.
    code, text, document = image.plan(["responses==0.25.3", "types-requests"], check=False)
    assert code == 3
    urllib3 = image.changes(document)["urllib3"]
    assert urllib3["refused"]
    blame = r"types-requests 2\.32\.0\.20240602 requires urllib3 ?>=2"
    assert re.search(blame, urllib3["reason"]), text
    image.check(document)


def test_contract_chains_through_extras_when_pip_reports_the_dependencies(image: Real) -> None:
    # The refusal path (pytest's pluggy) and installer: pip both read pip's --report.
    pip = ["jupyter-events==0.10.0", "bleach[css]==6.1.0"]
    for requests, options in (([*pip, "pytest==8.2.2"], {}), (pip, {"installer": "pip"})):
        _, text, document = image.plan(requests, check=False, **options)
        changes = image.changes(document)
        for name in ("fqdn", "isoduration", "jsonpointer", "uri-template", "webcolors"):
            assert changes[name]["required_by"][-1:] == ["jsonschema"], (name, text)
        assert changes["tinycss2"]["required_by"] == ["bleach"], text
        image.check(document)


def _clash_reason(document: dict[str, Any]) -> str:
    return "\n".join(
        c["reason"] for c in document["environments"][0]["changes"] if c.get("refused")
    )


def test_contract_a_file_clash_with_a_managed_distribution_is_refused(image: Real) -> None:
    # jwt 1.3.1 and the image's PyJWT 2.8.0 both ship jwt/__init__.py.
    jwt_init = image.prefix / SITE / "jwt" / "__init__.py"
    original = jwt_init.read_bytes()
    code, text, document = image.plan(["jwt==1.3.1"], check=False)
    assert code == 3, text
    reason = _clash_reason(document)
    assert "PyJWT" in reason and "jwt" in reason and "jwt/__init__.py" in reason, text
    assert_refused_apply_changes_nothing(image, ["jwt==1.3.1"])
    assert jwt_init.read_bytes() == original
    assert "jwt" not in installed_versions(image.prefix)


def test_contract_a_held_back_version_names_the_pin_holding_it_back(image: Real) -> None:
    # An unpinned black resolves to 22.12.0: black >= 23 requires packaging>=22.0, and
    # packaging is managed at 21.3. The plan says so.
    code, text, document = image.plan(["black"], check=False)
    assert code == 0
    black = image.changes(document)["black"]
    assert (black["to"], held_back_core(black)) == ("22.12.0", HELD_BACK), text
    lines = body(text)
    assert lines[0] == "  + install pip black 22.12.0 (requested)"
    assert lines[1].startswith(HELD_BACK_TEXT), text
    assert lines[2:] == [
        "  + install pip click 8.1.7 (required by black)",
        "  + install pip mypy-extensions 1.0.0 (required by black)",
        "  + install pip pathspec 0.12.1 (required by black)",
        "Plan: 4 to install.",
    ]
    image.check(document)


def test_contract_a_rebuilt_venv_is_a_new_image(image_master: Path, image: Real) -> None:
    # The image is built at P with `python -m venv P`; then rebuilt at the same P with
    # a newer pluggy: a new image (new baseline), not a hand change to a managed package.
    prefix = image.root / "rebuilt"
    venv_like(image_master, prefix)
    real = Real(prefix, image.wheels, image.env, image.root)
    manifest = real.manifest(["tabulate"])
    assert real.run("baseline", "capture", manifest).returncode == 0
    next_second()  # a rebuild is a later build: the identity keeps whole-second mtimes
    shutil.rmtree(prefix)
    venv_like(image_master, prefix)
    pip_install(prefix, ["pluggy==1.5.0"], image.wheels, image.env)
    plan = real.run("plan", manifest)
    assert f"the image under {prefix} changed since the baseline" in plan.stdout, plan.stdout
    drift = real.run("drift", manifest, "--json")
    findings = json.loads(drift.stdout)["environments"][0]["findings"]
    assert [f["kind"] for f in findings if f["name"] == "pluggy"] == [], findings
