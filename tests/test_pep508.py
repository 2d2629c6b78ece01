"""reconciler.pep508.parse_simple against packaging.requirements: the same answer, or none.

Whatever the simple parser reads, packaging must read as the very same requirement
(name, extras, sorted and written clauses, no marker, no URL); whatever packaging
refuses, the simple parser must leave alone. Checked on strings written by hand, on
strings built token by token at random, and on the requirements of every manifest in
the repository.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from packaging.requirements import InvalidRequirement
from packaging.specifiers import SpecifierSet

from reconciler.pep508 import ParsedRequirement, parse, parse_by_packaging, parse_simple
from reconciler.values import replace

#: Read by the simple parser (and by packaging, the same).
SIMPLE = (
    "numpy", "numpy>=1.26", "polars>=1,<2", "pandas==2.2.*", "scikit-learn~=1.4",
    "polars[pyarrow]>=1,<2", "a[x, y]", "Foo.Bar_baz-9 >= 1.0 , != 1.5.* , < 3",
    "zeta==1.0", "x!=2", "x>1", "x<1", "x<=1.0.0.0", "A", "a-b.c_d", "numpy[]",
    "numpy >=1", "  numpy>=1  ", "\tnumpy\t>=\t1", "numpy[a,b]==1.0.*", "x~=0.0",
    "n==01.0", "x[y]", "numpy>=1.26rc1", "numpy>=1.0.post1", "numpy>=1.dev0",
    "a==28.16.7.dev0", "a>=1.7.3.post1,<2", "a==21.20.2rc1", "a==1.0a1.post2.dev3",
    "a~=1.0b2", "a!=2.0rc1",
)  # fmt: skip
#: Left to packaging: valid PEP 508 beyond the simple form, or invalid.
OTHERS = (
    "numpy==1.0+local", "numpy===1.0", "numpy==1.0rc1.*", "numpy>=1.0RC1",
    "numpy>=1.0-1", "numpy>=1.0.post", "numpy>=1.0c1", "numpy>=1.0.rc1", "numpy (>=1)",
    "numpy>=1; python_version>'3'",
    "numpy @ https://example.com/n.whl", "numpy>=1!2", "numpy~=1",
    "numpy>=1.*", "numpy~=1.0.*", "numpy>=1,", "numpy>=", "numpy=1", "numpy>=1 <2", "-e x",
    "numpy[a,]", "numpy[", "numpy]", "numpy-", ".numpy", "", " ", "numpy\u00a0>=1",
    "numpy>=v1", "num py", "numpy,", "numpy==1.0.*.*", "numpy>=1\n",
    "a>=1,>=1", "a>=1.0,>=1", "a!=1,!=01", "a==1,==1.0",
)  # fmt: skip


#: packaging before 26 keeps a specifier's clauses in a frozenset (hash order): there,
#: only which clauses ``written`` holds is compared.
ORDERED = all(
    [str(c) for c in SpecifierSet(text)] == text.split(",") for text in (">=1,<2", "<2,>=1")
)


def comparable(parsed: ParsedRequirement | None) -> object:
    if parsed is None or ORDERED:
        return parsed
    return replace(parsed, written=",".join(sorted(parsed.written.split(","))))


def packaging_or_none(text: str) -> object:
    try:
        return comparable(parse_by_packaging(text))
    except InvalidRequirement:
        return None


@pytest.mark.parametrize("text", SIMPLE)
def test_simple_strings_are_read_as_packaging_reads_them(text: str) -> None:
    simple = parse_simple(text)
    assert simple is not None
    assert comparable(simple) == packaging_or_none(text)


@pytest.mark.parametrize("text", OTHERS)
def test_other_strings_are_left_to_packaging(text: str) -> None:
    assert parse_simple(text) is None


def test_parse_falls_back_to_packaging() -> None:
    marked = parse("numpy>=1; python_version >= '3.10'")
    assert marked.marker == 'python_version >= "3.10"'
    assert marked.spec == ">=1"
    with pytest.raises(InvalidRequirement):
        parse("numpy>=")


_TOKENS = st.sampled_from(
    [
        "numpy", "a", "Z9", "x.y", "a-b", "a_b", "-", ".", "_", "[", "]", ",", " ", "\t",
        "==", "!=", ">=", "<=", ">", "<", "~=", "===", "=", "!", "~", "1", "0", "26", ".*",
        "*", ".0", "rc1", "a1", "b", "RC1", ".post1", "post", ".dev0", "dev", "+", ";", "@",
        "(", ")", "extra", "\n", "\u00a0", "!1",
    ]
)  # fmt: skip


@settings(max_examples=3000, deadline=None)
@given(st.lists(_TOKENS, min_size=1, max_size=12).map("".join))
@example("numpy[x]>=1,<2")
@example("a>=1.0,>=1")
def test_random_strings_agree_with_packaging(text: str) -> None:
    simple = parse_simple(text)
    if simple is not None:
        assert comparable(simple) == packaging_or_none(text), text


def test_every_manifest_requirement_agrees(tmp_path: object) -> None:
    import yaml

    from tests.support.manifests import REPO

    texts: set[str] = set()

    def walk(node: object, key: str = "") -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                walk(v, str(k))
        elif isinstance(node, list):
            for item in node:
                if key == "pip" and isinstance(item, str):
                    texts.add(item)
                else:
                    walk(item, key)

    for path in [*REPO.glob("manifests/**/*.yaml"), *REPO.glob("tests/scenarios/*.yaml")]:
        try:
            walk(yaml.safe_load(path.read_text(encoding="utf-8")))
        except yaml.YAMLError:
            continue
    read = 0
    for text in sorted(texts):
        simple = parse_simple(text)
        if simple is not None:
            read += 1
            assert comparable(simple) == packaging_or_none(text), text
    assert read > len(texts) // 2
