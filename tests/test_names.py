"""reconciler.names.canonical_name is packaging's canonicalize_name (PEP 503)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from packaging.utils import canonicalize_name

from reconciler.names import canonical_name

NAMES = (
    "Django", "oslo.concurrency", "requests", "Foo__Bar", "foo-_.-bar", "A.B-C_D",
    "zope.interface", "ruamel.yaml", "-leading", "trailing_", "--", "", "ÄBC", "x...y",
)  # fmt: skip


def test_known_names_are_canonical_as_packaging_makes_them() -> None:
    assert [canonical_name(n) for n in NAMES] == [canonicalize_name(n) for n in NAMES]
    assert canonical_name("Foo__Bar.baz") == "foo-bar-baz"


@given(st.text(alphabet=st.sampled_from("aAzZ09-_.ÄßİK"), max_size=24))
def test_any_name_is_canonical_as_packaging_makes_it(name: str) -> None:
    assert canonical_name(name) == canonicalize_name(name)
