"""The requirement tables on real metadata: every ``Requires-Dist`` of the real image.

The answers a warm plan reads from the read cache (:mod:`reconciler.plan.requirements`)
must be the ones ``packaging`` gives for the requirements real wheels declare (some
600, with extras, markers and legacy forms), computed or read back from the cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from reconciler.plan import requirements
from reconciler.plan.requirements import applies, marker_environment, parse, satisfies, use_tables
from reconciler.state.cache import ReadCache
from reconciler.state.environment import read_state
from reconciler.state.python import Distribution
from reconciler.state.store import StateStore


def _answers(
    state_dists: Mapping[str, Distribution], texts: list[str], python: str | None
) -> list[object]:
    env = marker_environment(python)
    out: list[object] = []
    for text in texts:
        found = parse(text)
        if found is None:
            out.append(None)
            continue
        dist = state_dists.get(found.key)
        out.append((found.name, found.extras, found.spec, found.marker, found.url))
        out.append([applies(found, env, extras) for extras in ((), ("css", "socks"))])
        out.append(satisfies(found, dist))
    return out


def _packaging(
    state_dists: Mapping[str, Distribution], texts: list[str], values: dict[str, str]
) -> list[object]:
    from reconciler.names import canonical_name

    out: list[object] = []
    for text in texts:
        try:
            req = Requirement(text)
        except InvalidRequirement:
            out.append(None)
            continue
        marker = str(req.marker) if req.marker is not None else None
        out.append((req.name, frozenset(req.extras), str(req.specifier), marker, req.url))
        out.append(
            [
                req.marker is None
                or any(req.marker.evaluate({**values, "extra": e}) for e in ("", *extras))
                for extras in ((), ("css", "socks"))
            ]
        )
        dist = state_dists.get(canonical_name(req.name))
        out.append(
            dist is not None
            and (not req.specifier or req.specifier.contains(dist.version, prereleases=True))
        )
    return out


def test_every_real_requirement_is_answered_as_packaging_answers_it(
    image_master: Path, tmp_path: Path
) -> None:
    state = read_state(image_master)
    texts = sorted({t for d in state.dists.values() for t in d.requires})
    assert len(texts) > 300  # the real stack's metadata, not a handful
    values = marker_environment(state.python_version).values()
    cache = ReadCache()
    use_tables(cache)
    parse.cache_clear()
    requirements._marker.cache_clear()
    expected = _packaging(state.dists, texts, values)
    assert _answers(state.dists, texts, state.python_version) == expected
    store = StateStore(tmp_path / "state")
    store.save_read_cache(cache)
    again = store.read_cache()
    use_tables(again)
    parse.cache_clear()
    assert _answers(state.dists, texts, state.python_version) == expected
    assert not again.changed  # all of it from the tables
