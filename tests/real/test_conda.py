"""The real-package scenarios on the conda prefix made from the image venv.

Every distribution of the image is also a conda record (conda-forge names:
``pyjwt``, ``matplotlib-base``, ``typing_extensions``, ...) whose ``files``
list its dist-info, so each is one package on both sides. Tests named
``test_contract_*`` are issue 9's new promises (one change for pip over conda,
blame, file clashes, held-back versions).
"""

from __future__ import annotations

import json
import re

import pytest

from tests.real.scenario import (
    HELD_BACK,
    HELD_BACK_TEXT,
    Real,
    assert_refused_apply_changes_nothing,
    body,
    held_back_core,
)
from tests.real.stack import SITE, installed_versions

pytestmark = pytest.mark.real

#: The one refusal of ``pytest==8.2.2`` on the conda prefix: pluggy's chain, and the conda
#: package the pip upgrade would replace.
PLUGGY_REFUSED = (
    "      refused: pytest 8.2.2 requires pluggy<2.0,>=1.5; pluggy is managed at 1.0.0; pip "
    "would replace pluggy 1.0.0, which conda package pluggy 1.0.0 (managed) ships, and so "
    "remove conda pluggy; reconciler never uninstalls a package. Request it on the conda side "
    "instead"
)


def test_conda_additions_apply_and_every_record_stays_identical(conda_image: Real) -> None:
    pip = ["tabulate==0.9.0", "bleach[css]==6.1.0"]
    code, text, _ = conda_image.plan(pip)
    assert code == 0
    assert text.splitlines()[0] == f"image ({conda_image.prefix}, conda):"
    assert body(text) == [
        "  + install pip bleach 6.1.0 (requested)",
        "  + install pip tabulate 0.9.0 (requested)",
        "  + install pip tinycss2 1.2.1 (required by bleach)",
        "  + install pip webencodings 0.5.1 (required by bleach)",
        "Plan: 4 to install.",
    ]
    before = conda_image.managed_hash()
    applied = conda_image.apply(pip)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert installed_versions(conda_image.prefix)["bleach"] == "6.1.0"
    assert conda_image.managed_hash() == before
    again = conda_image.apply(pip)
    assert (again.returncode, len(again.stdout.strip().splitlines())) == (0, 1), again.stdout


def test_conda_transitive_refusal_names_the_chain_and_changes_nothing(conda_image: Real) -> None:
    code, text, _ = conda_image.plan(["pytest==8.2.2"])
    assert code == 3
    assert body(text) == [
        "  + install pip iniconfig 2.0.0 (required by pytest)",
        "  ! upgrade pip pluggy 1.0.0 -> 1.5.0",
        PLUGGY_REFUSED,
        "  + install pip pytest 8.2.2 (requested)",
        "Plan: 2 to install, 1 to upgrade; 1 refused (apply would change nothing).",
        "  hint: image: pytest needs pluggy 1.0.0 to change: remove pytest from the manifest, "
        "or pin a version of pytest that works with it",
    ]
    assert_refused_apply_changes_nothing(conda_image, ["pytest==8.2.2"])


def test_conda_direct_refusal_quotes_the_request(conda_image: Real) -> None:
    code, text, _ = conda_image.plan(["urllib3>=2", "tabulate"])
    assert code == 3
    lines = text.splitlines()
    assert lines[2].startswith(
        "      refused: requested urllib3>=2 would upgrade managed urllib3 1.26.19; pip would "
        "replace urllib3 1.26.19, which conda package urllib3 1.26.19 (managed) ships"
    ), text
    assert "  + install pip tabulate 0.9.0 (requested)" in lines


def test_a_new_conda_image_is_a_new_baseline_not_drift(conda_image: Real) -> None:
    history = conda_image.prefix / "conda-meta" / "history"
    text = history.read_text()
    history.write_text(text.replace("==> 2026-01-01 00:00:00 <==", "==> 2026-02-01 00:00:00 <=="))
    manifest = conda_image.manifest(["tabulate"])
    plan = conda_image.run("plan", manifest)
    assert f"the image under {conda_image.prefix} changed since the baseline" in plan.stdout
    drift = conda_image.run("drift", manifest, "--json")
    kinds = {f["kind"] for f in json.loads(drift.stdout)["environments"][0]["findings"]}
    assert kinds == {"missing"}


# -- contract (issue 9): built on other branches ---------------------------------------------


def test_contract_a_pip_change_replacing_a_conda_package_is_one_refused_change(
    conda_image: Real,
) -> None:
    code, text, document = conda_image.plan(["pytest==8.2.2"], check=False)
    assert code == 3
    refused = [c for c in document["environments"][0]["changes"] if c["refused"]]
    assert [(c["name"], c["action"]) for c in refused] == [("pluggy", "upgrade")], refused
    assert document["summary"]["refused"] == 1
    assert "Plan: 2 to install, 1 to upgrade; 1 refused (apply would change nothing)." in (
        text.splitlines()
    ), text


def test_contract_conda_refusal_blames_the_excluding_requirement(conda_image: Real) -> None:
    # pytest requires plain `packaging` (21.3 is fine); black 24.4.2 requires packaging>=22.0.
    code, text, document = conda_image.plan(["pytest==8.2.2", "black==24.4.2"], check=False)
    assert code == 3
    assert (
        "black 24.4.2 requires packaging>=22.0"
        in conda_image.changes(document)["packaging"]["reason"]
    ), text
    conda_image.check(document)


def test_contract_a_wheel_over_a_conda_records_files_is_refused(conda_image: Real) -> None:
    jwt_init = conda_image.prefix / SITE / "jwt" / "__init__.py"
    original = jwt_init.read_bytes()
    code, text, document = conda_image.plan(["jwt==1.3.1"], check=False)
    assert code == 3, text
    reason = "\n".join(c["reason"] for c in document["environments"][0]["changes"] if c["refused"])
    assert "jwt/__init__.py" in reason and re.search("pyjwt", reason, re.I), text
    assert_refused_apply_changes_nothing(conda_image, ["jwt==1.3.1"])
    assert jwt_init.read_bytes() == original


def test_contract_conda_held_back_version_is_reported(conda_image: Real) -> None:
    code, text, document = conda_image.plan(["black"], check=False)
    assert code == 0
    black = conda_image.changes(document)["black"]
    assert (black["to"], held_back_core(black)) == ("22.12.0", HELD_BACK), text
    assert body(text)[1].startswith(HELD_BACK_TEXT), text
