"""The manifest loader: examples load into the model, every invalid file fails exactly as written.

Each ``manifests/invalid/*.yaml`` starts with ``# error: `` lines holding the
exact problems the loader reports, in order; ``{file}`` stands for the path as
given to the loader and ``{tmp}`` for a scratch directory that holds a venv
(``{tmp}/venv``) and a conda environment (``{tmp}/conda``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest import (
    MAX_MANIFEST_BYTES,
    CondaRequest,
    Create,
    Kernel,
    Manifest,
    PipRequest,
    PipSettings,
    load_manifest,
)
from reconciler.resources import load_schema

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((REPO / "manifests").glob("*.yaml"))
INVALID = sorted((REPO / "manifests" / "invalid").glob("*.yaml"))


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A fresh ``HOME`` (``~`` in prefixes expands to it) and the repository as cwd."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(REPO)
    return home


def problems_of(path: Path | str, **kwargs: bool) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path, **kwargs)
    return [str(problem) for problem in caught.value.problems]


def at(path: Path, needle: str) -> str:
    """``file:line:col`` of the first occurrence of ``needle`` in the file at ``path``."""
    text = path.read_text(encoding="utf-8")
    offset = text.index(needle)
    line = text.count("\n", 0, offset) + 1
    return f"{path}:{line}:{offset - (text.rfind(chr(10), 0, offset) + 1) + 1}"


def write(tmp_path: Path, text: str, name: str = "manifest.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- the examples ------------------------------------------------------------------------


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_example_is_valid(example: Path, home: Path) -> None:
    manifest = load_manifest(example, check_prefixes=False)
    assert manifest.path == example
    assert manifest.sha256 == hashlib.sha256(example.read_bytes()).hexdigest()


def test_sagemaker_distribution_example(home: Path) -> None:
    manifest = load_manifest("manifests/sagemaker-distribution.yaml", check_prefixes=False)

    assert manifest.path == REPO / "manifests" / "sagemaker-distribution.yaml"
    assert manifest.protect == ("numpy", "pandas", "sagemaker*")
    base, dl = manifest.environments
    assert base.name == "base"
    assert base.prefix == Path("/opt/conda")
    assert base.create is None and base.kernel is None
    assert base.channels == ("conda-forge",)
    assert base.installer == "auto"
    assert base.pip_settings == PipSettings()
    assert base.conda == (
        CondaRequest("polars", "polars>=1.20,<2", ("environments.base.conda[0]",)),
        CondaRequest("shap", "shap>=0.46", ("environments.base.conda[1]",)),
    )
    assert base.pip == (
        PipRequest("great-tables", "great-tables>=0.15", ("environments.base.pip[0]",)),
        PipRequest("pygwalker", "pygwalker", ("environments.base.pip[1]",)),
        PipRequest("ipywidgets", "ipywidgets>=8", ("all.pip[0]",)),
    )

    assert dl.prefix == home / ".conda" / "envs" / "dl"
    assert dl.create == Create(python="3.11")
    assert dl.kernel == Kernel("dl", "Python 3 (dl)")
    assert dl.conda == (CondaRequest("ipykernel", "ipykernel>=6", ("environments.dl.conda[0]",)),)
    assert dl.pip == (
        PipRequest("torch", "torch==2.8.*", ("environments.dl.pip[0]",)),
        PipRequest("einops", "einops>=0.8", ("environments.dl.pip[1]",)),
        PipRequest("ipywidgets", "ipywidgets<9,>=8", ("environments.dl.pip[2]", "all.pip[0]")),
    )
    assert manifest.environment("dl") is dl


def test_sagemaker_distribution_example_with_prefix_checks(home: Path) -> None:
    """On a machine without /opt/conda (or with the image's conda env there) it is valid too."""
    if Path("/opt/conda").exists() and not Path("/opt/conda/conda-meta").is_dir():
        pytest.skip("/opt/conda exists here and is not a conda environment")
    load_manifest("manifests/sagemaker-distribution.yaml")


def test_venv_example(home: Path) -> None:
    manifest = load_manifest("manifests/venv.yaml")

    (tools,) = manifest.environments
    assert tools.prefix == home / ".venvs" / "tools"
    assert tools.create == Create(venv="/usr/bin/python3")
    assert tools.conda == ()
    assert [request.requirement for request in tools.pip] == [
        "ipykernel>=6",
        "httpx>=0.27,<1",
        "rich>=13",
        "polars>=1; python_version >= '3.9'",
    ]
    assert tools.pip_settings == PipSettings(index_url="https://pypi.org/simple")
    assert tools.kernel == Kernel("tools", "Python 3 (tools)")


# --- every invalid file, exactly ---------------------------------------------------------


def expected_problems(path: Path) -> list[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line[len("# error: ") :] for line in lines if line.startswith("# error: ")]


@pytest.mark.parametrize("invalid", INVALID, ids=lambda p: p.name)
def test_invalid_manifest(invalid: Path, home: Path, tmp_path: Path) -> None:
    expected = expected_problems(invalid)
    assert expected, f"{invalid.name} has no '# error: ' line"
    scratch = tmp_path / "scratch"
    (scratch / "venv").mkdir(parents=True)
    (scratch / "venv" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (scratch / "conda" / "conda-meta").mkdir(parents=True)
    text = invalid.read_text(encoding="utf-8")
    if "{tmp}" in text:
        path = write(tmp_path, text.replace("{tmp}", str(scratch)), invalid.name)
    else:
        path = invalid.relative_to(REPO)  # a relative path, printed as given

    problems = problems_of(path)

    assert problems == [
        line.replace("{file}", str(path)).replace("{tmp}", str(scratch)) for line in expected
    ]


def test_every_problem_of_one_run_in_document_order(home: Path) -> None:
    path = Path("manifests/invalid/many-problems.yaml")

    with pytest.raises(ManifestError) as caught:
        load_manifest(path)

    problems = caught.value.problems
    assert len(problems) == len(expected_problems(path)) >= 8
    assert [(p.line, p.column) for p in problems] == sorted((p.line, p.column) for p in problems)
    assert {p.file for p in problems} == {"manifests/invalid/many-problems.yaml"}
    assert str(caught.value) == "\n".join(map(str, problems)) + (
        f"\n  hint: {len(problems)} problems; fix the manifest and run `reconciler validate` again"
    )


# --- the file itself ---------------------------------------------------------------------


def test_size_bound(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    path.write_bytes(b"version: 1\n" + b"#" * MAX_MANIFEST_BYTES)

    assert problems_of(path) == [f"{path}:1:1: the manifest is larger than 1048576 bytes (1 MiB)"]


def test_size_bound_is_inclusive(tmp_path: Path) -> None:
    head = b"version: 1\n"
    path = tmp_path / "max.yaml"
    path.write_bytes(head + b"#" * (MAX_MANIFEST_BYTES - len(head) - 1) + b"\n")

    assert load_manifest(path).environments == ()


def test_unreadable_files(tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    assert problems_of(missing) == [f"{missing}:1:1: no such file"]
    with pytest.raises(ManifestError) as caught:
        load_manifest(missing)
    assert str(caught.value) == (
        f"{missing}: no such file\n  hint: check the path; a relative path is read from the "
        f"current directory ({os.getcwd()})"
    )
    assert problems_of(tmp_path) == [f"{tmp_path}:1:1: is a directory"]
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"version: 1\nprotect: [\xff]\n")
    assert problems_of(binary) == [f"{binary}:1:1: the manifest is not UTF-8 text (byte 21)"]


def test_control_character_in_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprotect: [a\x07]\n")
    assert problems_of(path) == [
        f"{path}:2:12: invalid YAML: character U+0007 is not allowed in a YAML file"
    ]


def test_deep_nesting_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, "version: 1\nprotect: " + "[" * 5000 + "]" * 5000 + "\n")
    assert problems_of(path) == [f"{path}:1:1: invalid YAML: nested too deeply"]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "version: 1\nprotect: [!!binary aGVsbG8=]\n",
            "2:11: protect[0]: tag '!!binary' is not allowed; a manifest holds only strings, "
            "numbers, booleans, null, lists and mappings",
        ),
        (
            "version: 1\nprotect: !!set {a, b}\n",
            "2:10: protect: tag '!!set' is not allowed; a manifest holds only strings, numbers, "
            "booleans, null, lists and mappings",
        ),
        (
            "version: 1\nenvironments:\n  on: {prefix: /a}\n",
            '3:3: environments: key on is read as a boolean, not a string; quote it: "on"',
        ),
        (
            "version: 1\nenvironments:\n  ? [a]\n  : {prefix: /a}\n",
            "3:5: environments: keys must be plain strings",
        ),
        (
            "version: 1\nall: {pip: &p [a]}\n",
            "2:12: YAML anchor '&p' is not allowed: anchors and aliases are disabled in manifests",
        ),
        (
            'version: "1"\n',
            "1:10: version: expected the number 1, got the string '1'; write 'version: 1'",
        ),
        ("environments: {}\n", "1:1: missing required key 'version'"),
        ("- version: 1\n", "1:1: expected a mapping, got a list"),
    ],
)
def test_yaml_level_problems(tmp_path: Path, text: str, problem: str) -> None:
    path = write(tmp_path, text)
    assert problems_of(path) == [f"{path}:{problem}"]


# --- semantics ---------------------------------------------------------------------------


def test_defaults_and_overrides(home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
version: 1
defaults:
  channels: [conda-forge, "https://example.com/channel"]
  pip:
    index_url: https://example.com/simple
    extra_index_urls: ["file:///srv/simple"]
    find_links: [~/wheels, "https://example.com/links"]
  installer: uv
environments:
  a: {prefix: "~"}
  b: {prefix: /srv/envs/b/, channels: [pytorch, conda-forge]}
  c: {prefix: "/srv//envs/./c"}
""",
    )
    manifest = load_manifest(path, check_prefixes=False)

    a, b, c = manifest.environments
    assert a.prefix == home
    assert (b.prefix, c.prefix) == (Path("/srv/envs/b"), Path("/srv/envs/c"))
    assert a.channels == c.channels == ("conda-forge", "https://example.com/channel")
    assert b.channels == ("pytorch", "conda-forge")
    assert a.installer == b.installer == "uv"
    assert (
        a.pip_settings
        == b.pip_settings
        == PipSettings(
            index_url="https://example.com/simple",
            extra_index_urls=("file:///srv/simple",),
            find_links=(str(home / "wheels"), "https://example.com/links"),
        )
    )
    assert manifest.protect == ()


def test_builtin_defaults(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, "version: 1\nenvironments: {a: {prefix: /a}}\n"))
    (a,) = manifest.environments
    assert (a.channels, a.installer, a.pip_settings) == (("conda-forge",), "auto", PipSettings())
    assert (a.conda, a.pip, a.create, a.kernel) == ((), (), None, None)


def test_merging_keeps_first_appearance_and_sources(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
version: 1
all:
  conda: ["numpy<2", "Numpy"]
  pip: ["Polars[pyarrow]>=1", "rich"]
environments:
  a:
    prefix: /a
    conda: ["pyarrow>=14", "numpy>=1.26"]
    pip: ["polars[numpy]<2", "polars<2"]
""",
    )
    (a,) = load_manifest(path).environments

    assert a.conda == (
        CondaRequest("pyarrow", "pyarrow>=14", ("environments.a.conda[0]",)),
        CondaRequest(
            "numpy", "numpy >=1.26,<2", ("environments.a.conda[1]", "all.conda[0]", "all.conda[1]")
        ),
    )
    assert a.pip == (
        PipRequest(
            "polars",
            "Polars[numpy,pyarrow]<2,>=1",
            ("environments.a.pip[0]", "environments.a.pip[1]", "all.pip[0]"),
        ),
        PipRequest("rich", "rich", ("all.pip[1]",)),
    )


@pytest.mark.parametrize(
    ("first", "second", "compatible"),
    [
        ("x>=1", "x<2", True),
        ("x==1.0", "x>=2", False),
        ("x==1.*", "x==2.*", False),
        ("x==1.*", "x>=1.5", True),
        ("x~=1.4.2", "x<1.4.5", True),
        ("x>1", "x<1.0.1", True),
        ("x!=1", "x==1", False),
        ("x<2", "x>=2.0rc1", False),
        ("x==1.0+cpu", "x>=1", True),
        ("x>=0.20", "x<0.20.1", True),
    ],
)
def test_pip_merge_decides_compatibility(
    tmp_path: Path, first: str, second: str, compatible: bool
) -> None:
    path = write(
        tmp_path, f"version: 1\nenvironments:\n  a: {{prefix: /a, pip: [{first!r}, {second!r}]}}\n"
    )
    if compatible:
        (a,) = load_manifest(path).environments
        assert a.pip[0].sources == ("environments.a.pip[0]", "environments.a.pip[1]")
    else:
        assert problems_of(path) == [
            f"{at(path, repr(second))}: environments.a.pip[1]: {second!r} conflicts with "
            f"{first!r} (environments.a.pip[0]): no version satisfies both"
        ]


@pytest.mark.parametrize(
    ("first", "second", "compatible"),
    [
        ("x>=1", "x<2", True),
        ("x==1.26.4", "x 2.*", False),
        ("x 1.*", "x >=1.5", True),
        ("x >=1|<0.5", "x<0.4", True),
        ("x >=1|<0.5", "x >0.6,<0.9", False),
    ],
)
def test_conda_merge_decides_compatibility(
    tmp_path: Path, first: str, second: str, compatible: bool
) -> None:
    path = write(
        tmp_path,
        f"version: 1\nenvironments:\n  a: {{prefix: /a, conda: [{first!r}, {second!r}]}}\n",
    )
    if compatible:
        (a,) = load_manifest(path).environments
        assert len(a.conda) == 1
    else:
        assert problems_of(path)[0].endswith(": no version satisfies both")


def test_different_markers_or_builds_are_not_merged(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
version: 1
all: {pip: ["numpy; python_version < '3.10'"], conda: ["numpy<2"]}
environments:
  a: {prefix: /a, pip: ["numpy>=1"], conda: ["conda-forge::numpy>=1"]}
""",
    )
    assert problems_of(path) == [
        f"{at(path, chr(34) + 'numpy>=1')}: environments.a.pip[0]: 'numpy>=1' conflicts with "
        "\"numpy; python_version < '3.10'\" (all.pip[0]): their environment markers differ, "
        "so they cannot be merged into one requirement",
        f"{at(path, chr(34) + 'conda-forge::')}: environments.a.conda[0]: "
        "'conda-forge::numpy>=1' conflicts with "
        "'numpy<2' (all.conda[0]): only specs made of a name and a version can be merged; "
        "write one spec",
    ]


@pytest.mark.parametrize(
    ("requirement", "message"),
    [
        (
            "--pre",
            "pip option '--pre' is not allowed in a requirement; only PEP 508 "
            "requirements are accepted",
        ),
        (
            "-e .",
            "pip option '-e' is not allowed in a requirement; editable installs are not supported",
        ),
        (
            "-c constraints.txt",
            "pip option '-c' is not allowed in a requirement; constraint "
            "files are not supported, write the constraint into the "
            "requirement",
        ),
        (
            "https://example.com/x.whl",
            "'https://example.com/x.whl' contains a URL; URLs are not "
            "allowed in requirements, configure the index in "
            "defaults.pip",
        ),
        ("x`id`", "'x`id`' contains the shell metacharacter '`'"),
        ("x && y", "'x && y' contains the shell metacharacter '&'"),
        ("x\\\\y", "'x\\\\y' contains the shell metacharacter '\\\\'"),
        ("x\\ny", "'x\\ny' contains a line break"),
        ("x\\0", "'x\\x00' contains a NUL character"),
    ],
)
def test_pip_strings_refused(tmp_path: Path, requirement: str, message: str) -> None:
    path = write(
        tmp_path, f'version: 1\nenvironments: {{a: {{prefix: /a, pip: ["{requirement}"]}}}}\n'
    )
    column = len("environments: {a: {prefix: /a, pip: [") + 1
    assert problems_of(path) == [f"{path}:2:{column}: environments.a.pip[0]: {message}"]


def test_markers_are_accepted(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "version: 1\nenvironments:\n  a:\n    prefix: /a\n    pip: "
        "[\"x>=1; python_version >= '3.10' and sys_platform == 'linux'\"]\n",
    )
    (a,) = load_manifest(path).environments
    assert a.pip[0].requirement == "x>=1; python_version >= '3.10' and sys_platform == 'linux'"


def test_prefix_checks(tmp_path: Path) -> None:
    venv, conda, file = tmp_path / "venv", tmp_path / "conda", tmp_path / "file"
    venv.mkdir()
    (conda / "conda-meta").mkdir(parents=True)
    file.write_text("")
    path = write(
        tmp_path,
        f"""\
version: 1
all: {{pip: [rich]}}
environments:
  v: {{prefix: {venv}, create: {{python: "3.11"}}}}
  c: {{prefix: {conda}, conda: [numpy], create: {{python: "3.11"}}}}
  f: {{prefix: {file}}}
""",
    )
    assert problems_of(path) == [
        f"{at(path, chr(34) + '3.11')}: environments.v.create.python: create.python makes a "
        f"conda environment, but {venv} exists and is not one (no conda-meta/)",
        f"{at(path, str(file))}: environments.f.prefix: prefix {file} exists and is not a "
        "directory",
    ]
    assert len(load_manifest(path, check_prefixes=False).environments) == 3


def test_duplicate_kernels_and_prefixes_after_expansion(home: Path, tmp_path: Path) -> None:
    path = write(
        tmp_path,
        f"""\
version: 1
environments:
  a: {{prefix: ~/env, kernel: {{name: k, display_name: A}}}}
  b: {{prefix: {home}/env/, kernel: {{name: k, display_name: B}}}}
""",
    )
    assert problems_of(path) == [
        f"{at(path, f'{home}/env/')}: environments.b.prefix: prefix {home}/env is already used "
        "by environment 'a'",
        f"{at(path, 'k, display_name: B')}: environments.b.kernel.name: kernel name 'k' is "
        "already used by environment 'a'",
    ]


def test_locations_are_checked(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        """\
version: 1
defaults:
  channels: ["/srv/channel", "conda forge", "nvidia/label/cuda-12.4", "file:///srv/channel"]
  pip:
    index_url: example.com/simple
    find_links: [wheels]
    no_index: true
environments: {a: {prefix: ~nosuchuser/env, create: {venv: python3}}}
""",
    )
    assert problems_of(path) == [
        f"{path}:3:14: defaults.channels[0]: channel '/srv/channel' is neither a channel name "
        "(conda-forge) nor an http(s):// or file:// URL",
        f"{path}:3:30: defaults.channels[1]: 'conda forge' contains whitespace",
        f"{path}:5:16: defaults.pip.index_url: index_url 'example.com/simple' is not an "
        "http(s):// or file:// URL",
        f"{path}:6:18: defaults.pip.find_links[0]: find_links path 'wheels' is relative; write "
        "an absolute path or one starting with ~/",
        f"{path}:7:15: defaults.pip.no_index: no_index is true but find_links is empty: the pip "
        "side could not find any distribution",
        f"{path}:8:28: environments.a.prefix: prefix '~nosuchuser/env' names another user's "
        "home; use ~/ or an absolute path",
        f"{at(path, 'python3}')}: environments.a.create.venv: create.venv 'python3' is "
        "relative; write an absolute path or one starting with ~/",
    ]


# --- the schema --------------------------------------------------------------------------


def test_schema_is_a_valid_draft_2020_12_schema_with_descriptions() -> None:
    from jsonschema import Draft202012Validator

    schema = load_schema("manifest.v1.schema.json")
    Draft202012Validator.check_schema(schema)

    def walk(node: object, where: str) -> None:
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                assert "description" in sub, f"{where}.{name} has no description"
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where} allows unknown keys"
            for key, sub in node.items():
                walk(sub, f"{where}.{key}")
        elif isinstance(node, list):
            for index, sub in enumerate(node):
                walk(sub, f"{where}[{index}]")

    walk(schema, "schema")


def test_heavy_modules_load_lazily() -> None:
    code = (
        "import sys, reconciler.manifest; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jsonschema', 'rattler'}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True
    )
    assert result.stdout.strip() == "[]"


def test_manifest_is_frozen(tmp_path: Path) -> None:
    manifest = load_manifest(write(tmp_path, "version: 1\n"))
    assert isinstance(manifest, Manifest)
    with pytest.raises(AttributeError):
        manifest.protect = ("x",)  # type: ignore[misc]
