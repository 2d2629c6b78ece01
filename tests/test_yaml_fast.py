"""The reader of the usual manifest YAML (reconciler/manifest/yaml_fast.py) against PyYAML.

Wherever ``read_simple`` answers, its Document must be the one PyYAML's composition
gives (values with their types, marks, ends, key marks, sources), and PyYAML must find
no error. Compared on every YAML file of the repository, on random documents built of
block and flow collections, scalars of every kind and comments, and on random edits of
the repository's manifests. The usual manifests must be answered without PyYAML.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from reconciler.errors import ManifestError
from reconciler.manifest.yaml_compose import compose_document
from reconciler.manifest.yaml_fast import read_simple
from tests.support.manifests import REPO, load_in_a_new_process

FIELDS = ("data", "marks", "ends", "key_marks", "sources", "invalid", "problems")
YAML_FILES = sorted(
    p for p in REPO.rglob("*.yaml") if ".venv" not in p.parts and ".cache" not in p.parts
)


def _same_or_unread(text: str) -> bool | None:
    """None when the fast reader leaves ``text`` to PyYAML; else whether both agree."""
    fast = read_simple(text, "m.yaml")
    if fast is None:
        return None
    try:
        slow = compose_document(text, "m.yaml")
    except ManifestError as error:
        pytest.fail(f"read_simple answered where PyYAML refuses ({error}):\n{text}")
    for name in FIELDS:
        a, b = getattr(fast, name), getattr(slow, name)
        assert a == b, f"{name} differs for:\n{text}"
    # repr too: True == 1 and 1 == 1.0, but a boolean is not a number here
    assert repr(fast.data) == repr(slow.data), text
    return True


def test_the_repository_manifests_agree_and_the_usual_ones_are_read_fast() -> None:
    answered = {p.name for p in YAML_FILES if _same_or_unread(p.read_text()) is not None}
    assert {"sagemaker-distribution.yaml", "venv.yaml"} <= answered
    # Those with problems are PyYAML's to read and report.
    for name in ("anchor-alias.yaml", "duplicate-key.yaml", "non-string-key.yaml", "empty.yaml"):
        assert name not in answered


_WORDS = (
    "a", "pip", "numpy>=1.2", "x y", "yes", "No", "null", "~", "1", "-3", "+4", "0", "007",
    "1.5", "2026-01-01", "<<", "=", "a:b", "http://h/x#f", "-x", "a#b", "a,b", "x[1]",
    "{a}", "it's", "a  b", "on", "OFF", "True", ".venv", "./w", "~/p", "1_0", "0x1f",
    "1:30", "a b:c", "@x", "`x", "%x", "!x", "&x", "*x", "|", "> x", "?x", ":x", ".inf",
    "+-1", "e1", "1e3", "0b1",
)  # fmt: skip
_KEYS = (
    "a", "b", "pip", "conda", "env-1", "x.y", "yes", "1", "null", "a b", "k:v", "'q k'",
    '"dq"', "a#b", "-k", "~", "x ", "'it''s'",
)  # fmt: skip


class _Generator:
    """Random documents in (and around) the part of YAML the fast reader reads."""

    def __init__(self, seed: int) -> None:
        self.rnd = random.Random(seed)

    def scalar(self) -> str:
        word = self.rnd.choice(_WORDS)
        roll = self.rnd.random()
        if roll < 0.15:
            return "'" + word.replace("'", "''") + "'"
        if roll < 0.3:
            return '"' + word + '"'
        return word

    def flow(self) -> str:
        if self.rnd.random() < 0.5:
            return "[" + ", ".join(self.scalar() for _ in range(self.rnd.randint(0, 3))) + "]"
        count = self.rnd.randint(0, 3)
        entries = (f"{self.rnd.choice(_KEYS)}: {self.scalar()}" for _ in range(count))
        return "{" + ", ".join(entries) + "}"

    def comment(self) -> str:
        return self.rnd.choice(["", " # c", "  #c", "#x"]) if self.rnd.random() < 0.3 else ""

    def block(self, depth: int, indent: int, out: list[str], first: str | None = None) -> None:
        rnd = self.rnd
        mapping = depth >= 3 or rnd.random() < 0.5
        for i in range(rnd.randint(1, 3)):
            lead = first if (i == 0 and first is not None) else " " * indent
            roll = rnd.random()
            if mapping:
                key = rnd.choice(_KEYS)
                if depth >= 3 or roll < 0.5:
                    out.append(f"{lead}{key}: {self.scalar()}{self.comment()}")
                elif roll < 0.65:
                    out.append(f"{lead}{key}: {self.flow()}{self.comment()}")
                elif roll < 0.72:
                    out.append(f"{lead}{key}:{rnd.choice(['', '  ', ' # c'])}")
                else:
                    out.append(f"{lead}{key}:{self.comment()}")
                    if rnd.random() < 0.2:
                        out.append(" " * rnd.randint(0, 6) + "# note")
                    if rnd.random() < 0.1:
                        out.append("")
                    self.block(depth + 1, indent + rnd.choice([0, 1, 2, 4]), out)
            elif depth >= 3 or roll < 0.4:
                out.append(f"{lead}- {self.scalar()}{self.comment()}")
            elif roll < 0.55:
                out.append(f"{lead}- {self.flow()}")
            elif roll < 0.6:
                out.append(f"{lead}-{rnd.choice(['', ' ', '  # c'])}")
            elif roll < 0.8:
                self.block(depth + 1, indent + 2, out, first=lead + "- ")
            else:
                out.append(f"{lead}-")
                self.block(depth + 1, indent + rnd.choice([1, 2, 3]), out)

    def document(self) -> str:
        out = ["# head"] if self.rnd.random() < 0.2 else []
        self.block(0, self.rnd.choice([0, 0, 0, 1, 2]), out)
        return "\n".join(out) + self.rnd.choice(["", "\n", "\n\n", "\n# end", "  "])


@pytest.mark.parametrize("seed", range(4))
def test_random_documents_agree(seed: int) -> None:
    generator = _Generator(seed)
    answered = sum(bool(_same_or_unread(generator.document())) for _ in range(1500))
    assert answered > 200  # the comparison is not vacuous


_EDITS = (
    *" -:#'\"[]{},?&*!|>%@`~.0123456789abyntfoN\n",
    "- ", "  ", "\n  ", "\n- ", ": ", "yes", "null", "1.0", "0x1", "1_0", "<<", "=", "\t", "é",
)  # fmt: skip


def _edited(rnd: random.Random, text: str) -> str:
    for _ in range(rnd.randint(1, 3)):
        at = rnd.randrange(len(text) + 1)
        roll = rnd.random()
        lines = text.split("\n")
        line = rnd.randrange(len(lines))
        if roll < 0.4:
            text = text[:at] + rnd.choice(_EDITS) + text[at:]
        elif roll < 0.7:
            text = text[:at] + text[at + rnd.randint(1, 3) :]
        elif roll < 0.85:
            lines.insert(line, lines[rnd.randrange(len(lines))])
            text = "\n".join(lines)
        else:
            lines[line] = " " * rnd.randint(0, 3) + lines[line].lstrip(" ")
            text = "\n".join(lines)
    return text


def test_edits_of_the_repository_manifests_agree() -> None:
    texts = [p.read_text() for p in YAML_FILES]
    texts = [t for t in texts if read_simple(t, "m.yaml") is not None]
    rnd = random.Random(13)
    answered = sum(bool(_same_or_unread(_edited(rnd, rnd.choice(texts)))) for _ in range(4000))
    assert answered > 1000


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a: 1\n", {"a": 1}),
        ("a: -3\nb: +4\nc: 0\n", {"a": -3, "b": 4, "c": 0}),
        ("a: yes\nb: Off\nc: ~\nd:\n", {"a": True, "b": False, "c": None, "d": None}),
        ("a: .venv\nb: 1.0a1\nc: 2.8.*\n", {"a": ".venv", "b": "1.0a1", "c": "2.8.*"}),
        ("a:\n- x\n- 'it''s'\nb: [c, \"d e\"]\n", {"a": ["x", "it's"], "b": ["c", "d e"]}),
        ("- k: v\n  l: {m: n}\n", [{"k": "v", "l": {"m": "n"}}]),
    ],
)
def test_values_as_pyyaml_has_them(text: str, value: object) -> None:
    document = read_simple(text, "m.yaml")
    assert document is not None
    assert repr(document.data) == repr(value)
    assert _same_or_unread(text)


@pytest.mark.parametrize(
    "text",
    [
        "a: 1.5\n", "a: 007\n", "a: 0x1f\n", "a: 2026-01-01\n", "a: &x 1\n", "a: !!str 1\n",
        "a: |\n  x\n", "a: x\n  y\n", "a: 1\na: 2\n", "1: a\n", "yes: a\n", "a: \"\\n\"\n",
        "a: [b,\n  c]\n", "a: [[b]]\n", "a:\tb\n", "a: é\n", "---\na: 1\n", "", "# only\n",
        "a: b: c\n", "<<: {}\n",
    ],
)  # fmt: skip
def test_what_is_left_to_pyyaml(text: str) -> None:
    assert read_simple(text, "m.yaml") is None


def test_nesting_too_deep_is_left_to_pyyaml() -> None:
    text = "".join(" " * depth + f"k{depth}:\n" for depth in range(1500)) + " " * 1500 + "k: v\n"
    assert read_simple(text, "m.yaml") is None


def test_a_usual_manifest_loads_without_importing_pyyaml(tmp_path: Path) -> None:
    """What a plan of a manifest just edited pays: no PyYAML import for the usual one."""
    usual = tmp_path / "usual.yaml"
    usual.write_text((REPO / "manifests" / "sagemaker-distribution.yaml").read_text())
    odd = tmp_path / "odd.yaml"
    odd.write_text("version: 1\nenvironments:\n  e: &a {prefix: /opt/e}\n")
    for path, expected in ((usual, ["loaded", "False"]), (odd, None)):
        lines = load_in_a_new_process(path, "yaml")
        if expected is not None:
            assert lines == expected
        else:
            assert "anchors and aliases are disabled" in lines[0]
            assert lines[-1] == "True"
