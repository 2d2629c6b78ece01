"""reconciler.values: value classes behave as frozen, slotted dataclasses, side by side.

Each semantic check builds the same class twice, once with ``@value`` and once with
stdlib ``@dataclass(frozen=True, slots=True)``, and asserts they agree (repr text,
equality, hash, frozen errors and their messages, defaults and factories, replace,
field order, slots). Then what differs on purpose: reconciler's modules never
import :mod:`dataclasses` or :mod:`typing` through ``reconciler.values``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import pickle
import subprocess
import sys
import threading
from functools import cached_property
from typing import Any, ClassVar

import pytest

from reconciler import values
from reconciler.values import FrozenInstanceError, field, fields, is_value, replace, value
from tests.support.manifests import REPO


def _pair(
    body: dict[str, Any], annotations: dict[str, str], *, slots: bool = True
) -> tuple[type, type]:
    """The class of ``body`` as a value class and as a frozen (slotted) dataclass.

    Where the frozen checks meet an attribute that is not a field, the reference is
    the dataclass without slots: on 3.11 a frozen slotted dataclass's ``__setattr__``
    still names the class it replaced, and raises TypeError (``super(type, obj)``).
    """

    def make(name: str) -> type:
        ns = {"__annotations__": dict(annotations), "__module__": __name__, **body}
        ns["__qualname__"] = f"Outer.{name}"
        return type(name, (), ns)

    ours = value(make("Point"))
    theirs = dataclasses.dataclass(frozen=True, slots=slots)(make("Point"))
    return ours, theirs


_FIELDS = {"name": "str", "version": "str", "build": "str", "extras": "tuple[str, ...]"}


def test_repr_eq_and_hash_agree_with_dataclasses() -> None:
    ours, theirs = _pair({"build": ""}, {"name": "str", "version": "str", "build": "str"})
    for cls in (ours, theirs):
        a, b, c = cls("numpy", "2.0"), cls("numpy", "2.0"), cls("numpy", "2.1", "py_0")
        assert repr(a) == "Outer.Point(name='numpy', version='2.0', build='')"
        assert repr(c) == "Outer.Point(name='numpy', version='2.1', build='py_0')"
        assert a == b and a != c and (a != b) is False
        assert hash(a) == hash(b) == hash(("numpy", "2.0", ""))
        assert a.__eq__(("numpy", "2.0", "")) is NotImplemented
        assert {a, b, c} == {a, c}
    # Same class only: a value never equals a dataclass with the same fields.
    assert ours("numpy", "2.0") != theirs("numpy", "2.0")


def test_frozen_errors_and_messages_agree_with_dataclasses() -> None:
    ours, theirs = _pair({}, {"name": "str"}, slots=False)
    seen = []
    for cls, error in ((ours, FrozenInstanceError), (theirs, dataclasses.FrozenInstanceError)):
        item = cls("numpy")
        for name, action in (("name", setattr), ("name", delattr), ("other", setattr)):
            with pytest.raises(AttributeError) as caught:
                action(item, name, 1) if action is setattr else action(item, name)
            seen.append((cls is ours, type(caught.value) is error, str(caught.value)))
        assert item.name == "numpy"
    ours_seen = [(e, m) for is_ours, e, m in seen if is_ours]
    assert ours_seen == [(e, m) for is_ours, e, m in seen if not is_ours]
    assert ours_seen == [
        (True, "cannot assign to field 'name'"),
        (True, "cannot delete field 'name'"),
        (True, "cannot assign to field 'other'"),
    ]
    assert issubclass(FrozenInstanceError, AttributeError)
    with pytest.raises(AttributeError, match="'Point' object has no attribute 'other'"):
        object.__setattr__(ours("numpy"), "other", 1)  # slots: no __dict__ to put it in


def test_defaults_and_factories_agree_with_dataclasses() -> None:
    for deco, make_field in (
        (value, field),
        (dataclasses.dataclass(frozen=True, slots=True), dataclasses.field),
    ):

        @deco
        class Record:
            name: str
            version: str = "0"
            files: list[str] = make_field(default_factory=list)
            depends: tuple[str, ...] = make_field(default_factory=tuple)

        a, b = Record("a"), Record("a")
        assert a.files == [] and a.files is not b.files  # a new object per instance
        assert (a.version, a.depends) == ("0", ())
        given: list[str] = ["x"]
        assert Record("a", "1", given).files is given
        assert Record(name="a", depends=("q",)).depends == ("q",)
        with pytest.raises(TypeError):
            Record()  # type: ignore[call-arg]
        with pytest.raises(TypeError):
            Record("a", "1", [], (), "too many")  # type: ignore[call-arg]


def test_replace_and_fields_agree_with_dataclasses() -> None:
    ours, theirs = _pair({"build": ""}, {"name": "str", "version": "str", "build": "str"})
    a = ours("numpy", "2.0")
    changed = replace(a, version="2.1")
    assert changed == ours("numpy", "2.1") and a == ours("numpy", "2.0")
    assert repr(changed) == repr(dataclasses.replace(theirs("numpy", "2.0"), version="2.1"))
    assert fields(ours) == fields(a) == tuple(f.name for f in dataclasses.fields(theirs))
    assert fields(ours) == ("name", "version", "build")
    with pytest.raises(TypeError, match="unexpected keyword argument 'nope'"):
        replace(a, nope=1)
    with pytest.raises(TypeError, match="must be called with a value class or instance"):
        fields(theirs)
    assert is_value(ours) and is_value(a)
    assert not is_value(theirs) and not is_value(theirs("numpy", "2.0")) and not is_value(1)


def test_slots_in_field_order_and_no_instance_dict() -> None:
    ours, theirs = _pair({}, _FIELDS)
    assert ours.__slots__ == theirs.__slots__ == tuple(_FIELDS)
    item = ours("a", "1", "b", ())
    assert not hasattr(item, "__dict__") and not hasattr(item, "__weakref__")
    assert ours.__match_args__ == theirs.__match_args__ == tuple(_FIELDS)


def test_methods_properties_constants_and_docstrings_stay() -> None:
    @value
    class Package:
        """One package."""

        KIND = "pip"
        LIMIT: ClassVar[int] = 3  # a ClassVar is not a field
        name: str
        version: str = "1"

        @property
        def key(self) -> str:
            """``KIND:name``."""
            return f"{self.KIND}:{self.name}"

        @staticmethod
        def parse(text: str) -> Package:
            return Package(*text.split("=="))

        @classmethod
        def unknown(cls) -> Package:
            return cls("?")

        def __str__(self) -> str:
            return f"{self.name}=={self.version}"

    assert fields(Package) == ("name", "version")
    assert Package.__doc__ == "One package." and Package.KIND == "pip" and Package.LIMIT == 3
    assert Package("numpy").key == "pip:numpy"
    assert Package.parse("numpy==2.0") == Package("numpy", "2.0")
    assert Package.unknown() == Package("?") and type(Package.unknown()) is Package
    assert str(Package("numpy")) == "numpy==1" and repr(Package("n")) == (
        "test_methods_properties_constants_and_docstrings_stay.<locals>.Package"
        "(name='n', version='1')"
    )


def test_a_method_the_class_writes_itself_is_kept() -> None:
    @value
    class Loose:
        name: str

        def __eq__(self, other: object) -> bool:
            return isinstance(other, Loose) and other.name.lower() == self.name.lower()

        def __repr__(self) -> str:
            return f"<{self.name}>"

    # As dataclasses: the body's __eq__ and __repr__ stay; __hash__ is still made.
    assert Loose("A") == Loose("a") and repr(Loose("A")) == "<A>"
    assert hash(Loose("x")) == hash(("x",))
    with pytest.raises(TypeError, match="Cannot overwrite attribute __setattr__ in class Bad"):

        @value
        class Bad:
            name: str

            def __setattr__(self, name: str, item: object) -> None:
                pass


def test_mutable_values_compare_and_are_unhashable_like_dataclasses() -> None:
    @value(frozen=False)
    class Ours:
        status: str = "pending"
        notes: list[str] = field(default_factory=list)

    @dataclasses.dataclass(slots=True)
    class Theirs:
        status: str = "pending"
        notes: list[str] = dataclasses.field(default_factory=list)

    for cls in (Ours, Theirs):
        item = cls()
        item.status = "running"
        item.notes.append("x")
        assert item == cls("running", ["x"]) and item != cls()
        assert cls.__hash__ is None
        with pytest.raises(TypeError, match="unhashable type"):
            hash(item)
        with pytest.raises(AttributeError):
            item.other = 1  # type: ignore[attr-defined]
    assert repr(Ours("a", ["n"])).endswith("Ours(status='a', notes=['n'])")


def test_without_slots_a_cached_property_and_vars_work() -> None:
    calls = []

    @value(slots=False)
    class State:
        prefix: str

        @cached_property
        def packages(self) -> list[str]:
            calls.append(1)
            return [self.prefix]

    state = State("/opt/conda")
    assert state.packages is state.packages and calls == [1]
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'prefix'"):
        state.prefix = "x"  # type: ignore[misc]
    assert vars(state)["prefix"] == "/opt/conda" and state == State("/opt/conda")

    @value(frozen=False, slots=False)
    class Env:
        status: str = "pending"
        steps: int = 0

    assert vars(Env()) == {"status": "pending", "steps": 0}


def test_a_base_class_that_is_not_a_value() -> None:
    class Reporter:
        def notice(self, text: str) -> str:
            return f"notice: {text}"

    @value(frozen=False)
    class Forwarding(Reporter):
        inner: str
        seen: list[str] = field(default_factory=list)

    item = Forwarding("x")
    assert isinstance(item, Reporter) and item.notice("a") == "notice: a"
    assert fields(Forwarding) == ("inner", "seen") and item == Forwarding("x", [])

    with pytest.raises(TypeError, match="cannot derive from another value class"):

        @value
        class Derived(Forwarding):
            more: int = 0


def test_a_plain_subclass_of_a_frozen_value() -> None:
    ours, theirs = _pair({}, {"name": "str"}, slots=False)
    for cls in (ours, theirs):
        sub = type("Sub", (cls,), {})  # no __slots__: its instances have a __dict__
        item = sub("numpy")
        item.note = "extra"  # not a field: set, as dataclasses lets it
        assert item.note == "extra" and vars(item)["note"] == "extra"
        with pytest.raises(AttributeError, match="cannot assign to field 'name'"):
            item.name = "scipy"
        del item.note
        with pytest.raises(AttributeError, match="cannot delete field 'name'"):
            del item.name
        assert item == item and item != cls("numpy")  # not the same class
    slotted = type("Sub", (value(type("Point", (), {"__annotations__": {"name": "str"}})),), {})
    item = slotted("numpy")
    item.note = "extra"  # where the slotted dataclass raises TypeError (see _pair)
    assert vars(item) == {"note": "extra"}
    with pytest.raises(FrozenInstanceError, match="cannot assign to field 'name'"):
        item.name = "scipy"


def test_bad_definitions_fail_as_dataclasses_do() -> None:
    with pytest.raises(ValueError, match="mutable default <class 'list'> for field notes"):

        @value
        class Shared:
            notes: list[str] = []  # noqa: RUF012

    with pytest.raises(TypeError, match="non-default argument 'name' follows default argument"):

        @value
        class Order:
            version: str = "1"
            name: str  # type: ignore[misc]


def test_copy_and_pickle_of_a_frozen_slotted_value() -> None:
    item = Pickled("numpy", ("a", "b"))
    for other in (copy.copy(item), copy.deepcopy(item), pickle.loads(pickle.dumps(item))):
        assert other == item and other is not item and type(other) is Pickled
        assert hash(other) == hash(item)


@value
class Pickled:
    """Module level, so that pickle can find it."""

    name: str
    files: tuple[str, ...] = ()


def test_the_methods_are_made_once_per_class_and_between_threads() -> None:
    @value
    class Lazy:
        name: str
        build: str = ""

    # Nothing is compiled until a first instance; then __init__, and the comparing
    # methods only when one of them is first called.
    stand_ins = values._STAND_INS
    assert all(vars(Lazy)[m] is stand_ins[m] for m in ("__init__", "__eq__", "__hash__"))
    made: list[Lazy] = []
    threads = [threading.Thread(target=lambda: made.append(Lazy("x"))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert made == [Lazy("x")] * 8
    assert vars(Lazy)["__init__"] is not stand_ins["__init__"]
    assert vars(Lazy)["__init__"].__qualname__ == (
        "test_the_methods_are_made_once_per_class_and_between_threads.<locals>.Lazy.__init__"
    )
    init = vars(Lazy)["__init__"]
    assert Lazy("y", "b") == Lazy("y", "b") and vars(Lazy)["__init__"] is init
    assert vars(Lazy)["__eq__"] is not stand_ins["__eq__"]


def _fresh(code: str) -> str:
    return subprocess.run(
        [sys.executable, "-c", code], env={"PYTHONPATH": str(REPO)}, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip


def test_importing_values_imports_neither_typing_nor_dataclasses() -> None:
    out = _fresh(
        "import sys; before = set(sys.modules); import reconciler.values; "
        "print(sorted(set(sys.modules) - before))"
    )
    assert out == "['__future__', 'reconciler', 'reconciler.values']\n"


def test_no_module_of_reconciler_imports_dataclasses() -> None:
    # packaging's requirement tokenizer imports dataclasses itself (a plan parses
    # requirements), so the check is who asks for it: never one of reconciler's
    # modules. Every import statement goes through builtins.__import__, even of a
    # module imported already.
    probe = (
        "import builtins, importlib, pkgutil, sys\n"
        "asked, real = [], builtins.__import__\n"
        "def watch(name, globals=None, *args, **kwargs):\n"
        "    if name.partition('.')[0] == 'dataclasses':\n"
        "        asked.append((globals or {}).get('__name__'))\n"
        "    return real(name, globals, *args, **kwargs)\n"
        "builtins.__import__ = watch\n"
        "import reconciler\n"
        "names = [m.name for m in pkgutil.walk_packages(reconciler.__path__, 'reconciler.')]\n"
        "for name in names:\n"
        "    if name != 'reconciler.__main__':\n"
        "        importlib.import_module(name)\n"
        "import json; print(json.dumps([len(names), sorted(set(asked))]))\n"
    )
    count, asked = json.loads(_fresh(probe))
    assert count > 80 and not [n for n in asked if n.startswith("reconciler")], asked


_KEPT_PROBE = """
import sys
import reconciler.values as v
v._KEPT = sys.argv[1]
from reconciler.values import value
@value
class Pair:
    name: str
    size: int = 0
@value
class {other}:
    {label}: str
made = [Pair("a", 1), Pair("a", 1), {other}("x")]
print(repr(made[0]), made[0] == made[1], hash(made[0]) == hash(made[1]), repr(made[2]))
print(len(v._compiled_here))
"""


def _kept_run(path: Any, other: str = "Single", *flags: str) -> list[str]:
    """A fresh process that keeps its compiled methods at ``path``: its output lines
    (what its values print, then how many method groups it compiled). The class
    ``other`` has one field, named after it."""
    probe = _KEPT_PROBE.format(other=other, label=other.lower())
    return subprocess.run(
        [sys.executable, *flags, "-c", probe, str(path)],
        env={"PYTHONPATH": str(REPO)}, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip


def test_compiled_methods_are_kept_for_the_next_process(tmp_path: Any) -> None:
    kept = tmp_path / "values.methods"
    first = _kept_run(kept)
    assert first == ["Pair(name='a', size=1) True True Single(single='x')", "4"]
    assert kept.read_bytes().startswith(values._MAGIC) and values._MAGIC
    assert _kept_run(kept) == [first[0], "0"]  # the same methods, none compiled again
    # Another field's methods are not in the file: compiled, and then kept too. (The
    # class name is not in the source: classes with the same fields share the code.)
    assert _kept_run(kept, "Other") == ["Pair(name='a', size=1) True True Other(other='x')", "2"]
    assert _kept_run(kept, "Other")[1] == "0"
    assert not [p.name for p in tmp_path.iterdir() if p.name != "values.methods"]


def test_a_damaged_or_foreign_kept_file_is_compiled_again_and_replaced(tmp_path: Any) -> None:
    kept = tmp_path / "values.methods"
    for damaged in (b"", b"\x00" * 40, values._MAGIC + b"\xff\x00garbage", b"XXXX" + b"{}"):
        kept.write_bytes(damaged)
        assert _kept_run(kept)[1] == "4"
        assert _kept_run(kept)[1] == "0"  # the first run wrote a good one
    import marshal

    kept.write_bytes(values._MAGIC + marshal.dumps({"source": 1}))  # not code objects
    assert _kept_run(kept)[1] == "4"


def test_nothing_is_kept_when_python_is_told_not_to_write_bytecode(tmp_path: Any) -> None:
    kept = tmp_path / "values.methods"
    assert _kept_run(kept, "Single", "-B")[1] == "4"
    assert not kept.exists()
    # Where nothing can be written (here a file stands where the directory would be,
    # as root may write to any mode): the run is the same, and nothing is written.
    (tmp_path / "file").write_text("")
    assert _kept_run(tmp_path / "file" / "values.methods")[1] == "4"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_compiled_methods_are_kept_in_the_users_cache_not_beside_the_package(
    tmp_path: Any,
) -> None:
    """Not in the package's ``__pycache__``: ``pip uninstall`` leaves files it did not
    install, and with them the package directory (then importable as a namespace)."""
    probe = (
        "import reconciler.values as v\n"
        "from reconciler.values import value\n"
        "@value\nclass Kept:\n    kept_field: int\n"
        "Kept(1)\nprint(v._KEPT)\n"
    )
    env = {"PYTHONPATH": str(REPO), "XDG_CACHE_HOME": str(tmp_path / "cache")}
    out = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()
    kept = tmp_path / "cache" / "reconciler" / "values"
    assert out.startswith(str(kept) + "/") and out.endswith(
        f".{sys.implementation.cache_tag}.methods"
    )
    assert [p.name for p in kept.iterdir()] == [out.rpartition("/")[2]]
    assert not list((REPO / "reconciler" / "__pycache__").glob("*.methods"))
    (tmp_path / "home").mkdir()
    home = {"PYTHONPATH": str(REPO), "HOME": str(tmp_path / "home")}  # no XDG_CACHE_HOME
    out = subprocess.run(
        [sys.executable, "-c", probe], env=home, capture_output=True, text=True, check=True
    ).stdout.strip()
    assert out.startswith(str(tmp_path / "home" / ".cache" / "reconciler" / "values") + "/")


def test_kept_methods_another_user_could_have_written_are_not_loaded(tmp_path: Any) -> None:
    """The file is code: one group- or world-writable (or in such a directory) is not
    loaded, and compiled again."""
    kept = tmp_path / "values.methods"
    assert _kept_run(kept)[1] == "4" and _kept_run(kept)[1] == "0"
    kept.chmod(0o666)
    assert _kept_run(kept)[1] == "4"  # not loaded (and replaced by this user's own)
    kept.chmod(0o600)
    tmp_path.chmod(0o777)
    try:
        assert _kept_run(kept)[1] == "4"
    finally:
        tmp_path.chmod(0o700)
    assert _kept_run(kept)[1] == "0"
