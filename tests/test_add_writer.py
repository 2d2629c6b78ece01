"""The manifest writer: round-trip edits keep the rest of the file; validated, atomic writes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from reconciler.errors import ManifestError, ReconcilerError
from reconciler.manifest.writer import ListEdit, edit_manifest, read_source, write_manifest
from tests.support.manifests import run_cli

PREFIX = "/nonexistent-reconciler-writer/env"

#: (layout, before, edit, after): block and flow lists, dash offsets, comments, quotes.
CASES = [
    (
        "safe_dump style (dash at the key's column)",
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n    pip:\n    - alpha\n"
        "    - beta  # why beta\n",
        ListEdit("e", "pip", {"gamma": "gamma>=1"}),
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n    pip:\n    - alpha\n"
        "    - beta  # why beta\n    - gamma>=1\n",
    ),
    (
        "indented dashes, four-space mappings, a comment line kept",
        f"version: 1\nenvironments:\n    e:\n        prefix: {PREFIX}\n        pip:\n"
        "          - 'alpha'\n          # beta stays pinned\n          - 'beta==1'\n",
        ListEdit("e", "pip", {"beta": "beta>=2"}),
        f"version: 1\nenvironments:\n    e:\n        prefix: {PREFIX}\n        pip:\n"
        "          - 'alpha'\n          # beta stays pinned\n          - 'beta>=2'\n",
    ),
    (
        "flow list, duplicates collapse to one entry, other environment untouched",
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
        '    pip: ["Alpha>=1", "beta", "alpha<3"]\n\n  f:\n    prefix: /elsewhere\n'
        '    pip: ["alpha"]\n',
        ListEdit("e", "pip", {"alpha": "alpha==2.0"}),
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
        '    pip: ["alpha==2.0", "beta"]\n\n  f:\n    prefix: /elsewhere\n'
        '    pip: ["alpha"]\n',
    ),
    (
        "remove the last entry of a block list",
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n    pip:\n      - alpha\n"
        "      - beta\n    kernel: {name: e, display_name: E}\n",
        ListEdit("e", "pip", drop=frozenset({"beta"})),
        f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n    pip:\n      - alpha\n"
        "    kernel: {name: e, display_name: E}\n",
    ),
    (
        "a new list goes after prefix, before the kernel, in the file's style",
        f"version: 1\nall: {{pip: [x]}}\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
        "    kernel: {name: e, display_name: E}\n",
        ListEdit("e", "pip", {"alpha": "alpha>=1"}),
        f"version: 1\nall: {{pip: [x]}}\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
        '    pip: ["alpha>=1"]\n    kernel: {name: e, display_name: E}\n',
    ),
    (
        "CRLF line endings and a document start marker",
        f"---\r\nversion: 1\r\nenvironments:\r\n  e:\r\n    prefix: {PREFIX}\r\n"
        "    pip: [alpha]\r\n",
        ListEdit("e", "pip", {"beta": "beta"}),
        f"---\r\nversion: 1\r\nenvironments:\r\n  e:\r\n    prefix: {PREFIX}\r\n"
        "    pip: [alpha, beta]\r\n",
    ),
]


@pytest.mark.parametrize(("layout", "before", "edit", "after"), CASES, ids=[c[0] for c in CASES])
def test_edits_keep_the_rest_of_the_file(
    tmp_path: Path, layout: str, before: str, edit: ListEdit, after: str
) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(before.encode())
    source = read_source(path)
    text = edit_manifest(source, [edit])
    assert text == after
    write_manifest(source, text)
    assert path.read_bytes() == after.encode()
    assert os.listdir(tmp_path) == ["m.yaml"]  # no temporary file left behind


def test_byte_order_mark_and_file_mode_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_bytes(
        b"\xef\xbb\xbfversion: 1\nenvironments:\n  e:\n    prefix: " + PREFIX.encode() + b"\n"
    )
    path.chmod(0o640)
    source = read_source(path)
    write_manifest(source, edit_manifest(source, [ListEdit("e", "pip", {"a": "a"})]))
    assert path.read_bytes().startswith(b"\xef\xbb\xbfversion: 1\n")
    assert path.read_bytes().endswith(b'    pip: ["a"]\n')
    assert path.stat().st_mode & 0o777 == 0o640


def test_a_layout_it_cannot_reproduce_is_not_rewritten(tmp_path: Path) -> None:
    # Two mapping indents in one file: ruamel would re-indent one of them.
    text = f"version: 1\ndefaults:\n    installer: uv\nenvironments:\n  e:\n    prefix: {PREFIX}\n"
    path = tmp_path / "m.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ReconcilerError) as info:
        edit_manifest(read_source(path), [ListEdit("e", "pip", {"a": "a"})])
    assert str(info.value) == (
        f"{path}: reconciler cannot rewrite this file without changing its layout (indentation "
        "or style it does not reproduce); it was not written\n"
        "  hint: make the change by hand, then run `reconciler validate`"
    )


def test_invalid_result_is_not_written(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n", encoding="utf-8")
    before = path.read_bytes()
    source = read_source(path)
    with pytest.raises(ManifestError) as info:
        write_manifest(source, source.text + "    pip: ['x; rm -rf /']\n")
    assert "environments.e.pip[0]" in str(info.value)
    assert path.read_bytes() == before


def test_a_file_changed_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"version: 1\nenvironments:\n  e:\n    prefix: {PREFIX}\n", encoding="utf-8")
    source = read_source(path)
    text = edit_manifest(source, [ListEdit("e", "pip", {"a": "a"})])
    path.write_text(source.text + "# edited by hand meanwhile\n", encoding="utf-8")
    with pytest.raises(ReconcilerError) as info:
        write_manifest(source, text)
    assert str(info.value) == (
        f"{path} changed while reconciler was working on it; it was not written\n"
        "  hint: run the command again"
    )
    assert path.read_text(encoding="utf-8").endswith("# edited by hand meanwhile\n")


def test_add_that_conflicts_with_all_is_refused_before_planning(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        f"version: 1\nall: {{pip: ['alpha>=2']}}\nenvironments:\n  e:\n    prefix: {tmp_path}\n",
        encoding="utf-8",
    )
    before = path.read_bytes()
    code, out, err = run_cli(capsys, "add", path, "--no-apply", "alpha==1.0")
    assert (code, out) == (1, "")
    assert err == (
        "error: cannot add alpha==1.0 to environments.e.pip: environments.e.pip[0]: "
        "'alpha==1.0' conflicts with 'alpha>=2' (all.pip[0]): no version satisfies both; "
        "nothing was changed\n  hint: give a spec compatible with the rest of the manifest\n"
    )
    assert path.read_bytes() == before


def test_bad_specs_are_rejected_with_the_manifest_rules(
    tmp_path: Path, isolated: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(f"version: 1\nenvironments:\n  e:\n    prefix: {tmp_path}\n", encoding="utf-8")
    code, out, err = run_cli(capsys, "add", path, "--no-apply", "x; rm -rf /")
    assert (code, out) == (1, "")
    assert err.startswith("error: 'x; rm -rf /': ")
    assert err.endswith("\n  hint: give a package name, optionally with a version\n")
    code, out, err = run_cli(capsys, "add", path, "alpha", "Alpha>=1")
    assert (code, err) == (1, "error: alpha is given twice\n  hint: give each package once\n")
