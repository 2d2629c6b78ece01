"""Frozen, slotted value classes: what ``@dataclass(frozen=True, slots=True)`` makes, cheaper.

On Python 3.11 :mod:`dataclasses` compiles every generated method of a class with its
own ``exec`` (``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__``,
``__delattr__``: ~3.8 M instructions a class), and importing it pulls in ``inspect``,
``ast``, ``dis`` and ``tokenize``. A plan defines some thirty value classes on every
run, instantiates most of them and compares or prints few. :func:`value` imports
nothing (not even :mod:`typing`) and defines a class for ~0.2 M instructions: its
``__init__`` is compiled (one ``exec``) when the first instance is made, and its
``__repr__``, ``__eq__`` and ``__hash__`` together (one more) when the first of them is
called. Until then those methods are small stand-ins that make the real ones and call
them. The compiled code is kept in the user's cache directory (when Python would write
bytecode), keyed by its whole source: a later process loads the methods of every class
with one ``marshal.loads`` instead of compiling each (~5 ms a plan).
``__setattr__``, ``__delattr__`` and the copy/pickle state methods are shared by all
value classes.

What a value class does, as a dataclass would: ``__slots__`` from the annotated
fields, in order (the class is rebuilt with them); defaults and
``field(default_factory=...)``; ``__init__`` (a frozen one sets each field as
``object.__setattr__`` would: through the slot's own setter, or ``object.__setattr__``
for a class without slots); ``__eq__`` (same class only, the field tuples compared);
``__hash__`` (the field tuple's when frozen, ``None`` when not); ``__repr__``
(``QualName(a=1, b='x')``); frozen ``__setattr__``/``__delattr__`` raising
:class:`FrozenInstanceError` with dataclasses' messages; ``__match_args__``. A method
the class body defines itself is kept. ``ClassVar`` annotations are not fields.
Copying and pickling a frozen slotted value work (``__getstate__``/``__setstate__``).

Not supported (reconciler uses none): ``InitVar``, ``KW_ONLY``, per-field options other
than ``default_factory``, ``order``, ``__post_init__``, and a value class as the base
of another (refused with a TypeError). Unlike dataclasses, a class without a
docstring gets no generated one, and ``inspect.signature`` of a class not yet
instantiated shows the stand-in's ``(*args, **kwargs)``.
"""

from __future__ import annotations

import marshal
import os
import sys

TYPE_CHECKING = False  # typing is not imported at run time (see reconciler/entry.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from types import CodeType
    from typing import Any, TypeVar, dataclass_transform, overload

    T = TypeVar("T")

__all__ = ["FrozenInstanceError", "field", "fields", "is_value", "replace", "value"]


class FrozenInstanceError(AttributeError):
    """A field of a frozen value was assigned or deleted (dataclasses' error and text)."""


class _Factory:
    """What :func:`field` returns: the default factory, until the decorator takes it."""

    __slots__ = ("factory",)

    def __init__(self, factory: Callable[[], object]) -> None:
        self.factory = factory


class _Missing:
    """The default of a field with a factory: an argument nobody else can pass."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<factory>"


_MISSING = _Missing()

#: Value class -> what its generated methods need: the defaults, how ``__init__`` sets
#: a field, and the names of the methods generated (each a stand-in until first called).
_PENDING: dict[type, tuple[dict[str, object], str, tuple[str, ...]]] = {}


def field(*, default_factory: Callable[[], T]) -> T:
    """A field whose default is a new ``default_factory()`` for each instance."""
    return _Factory(default_factory)  # type: ignore[return-value]  # as dataclasses.field


def fields(class_or_instance: object) -> tuple[str, ...]:
    """The field names of a value class (or of a value), in order."""
    try:
        names: tuple[str, ...] = class_or_instance.__value_fields__  # type: ignore[attr-defined]
    except AttributeError:
        raise TypeError("must be called with a value class or instance") from None
    return names


def is_value(obj: object) -> bool:
    """True for a value class and for an instance of one."""
    cls = obj if isinstance(obj, type) else type(obj)
    return "__value_fields__" in cls.__dict__


def replace(obj: T, /, **changes: object) -> T:
    """A copy of value ``obj`` with ``changes`` (field name -> new value) applied."""
    for name in fields(obj):
        if name not in changes:
            changes[name] = getattr(obj, name)
    return obj.__class__(**changes)


def _owner(obj: object) -> type:
    """The value class ``obj`` is an instance of (``type(obj)`` or one of its bases)."""
    return next(c for c in type(obj).__mro__ if "__value_fields__" in c.__dict__)


def _frozen_setattr(self: object, name: str, item: object) -> None:
    if "__value_fields__" in type(self).__dict__ or name in fields(self):
        raise FrozenInstanceError(f"cannot assign to field {name!r}")
    owner: Any = _owner(self)  # a type: mypy checks super() of a named class only
    super(owner, self).__setattr__(name, item)  # a plain subclass's own attribute


def _frozen_delattr(self: object, name: str) -> None:
    if "__value_fields__" in type(self).__dict__ or name in fields(self):
        raise FrozenInstanceError(f"cannot delete field {name!r}")
    owner: Any = _owner(self)  # a type: mypy checks super() of a named class only
    super(owner, self).__delattr__(name)


def _getstate(self: object) -> tuple[object, ...]:
    return tuple(getattr(self, name) for name in fields(self))


def _setstate(self: object, state: tuple[object, ...]) -> None:
    for name, item in zip(fields(self), state):
        object.__setattr__(self, name, item)


def _realize(cls: type, group: tuple[str, ...]) -> Any:
    """Give value class ``cls`` the generated methods of ``group`` still standing in.

    Idempotent: two threads may both compile a group, and either's methods will do.
    """
    defaults, setters, made = _PENDING[cls]
    wanted = tuple(m for m in group if m in made and vars(cls).get(m) is _STAND_INS[m])
    if not wanted:
        return cls
    names = fields(cls)
    scope: dict[str, Any] = {}
    exec(_compiled(_source(names, defaults, setters, wanted)), scope)
    values = [object.__setattr__, _MISSING]
    values += [d.factory if isinstance(d, _Factory) else d for d in defaults.values()]
    values += [vars(cls)[n].__set__ for n in names] if setters == "slot" else []
    for name, function in zip(wanted, scope["__create__"](*values)):
        function.__qualname__ = f"{cls.__qualname__}.{name}"
        setattr(cls, name, function)
    return cls


def _kept_path() -> str | None:
    """Where the compiled methods are kept between processes: the user's cache directory
    (``$XDG_CACHE_HOME``, else ``~/.cache``), one file per installation of reconciler and
    Python bytecode format. Not beside the package's bytecode: ``pip uninstall`` would
    leave it there, and the package directory with it. None where Python keeps no
    bytecode or there is no home."""
    tag = sys.implementation.cache_tag
    home = os.path.expanduser("~")
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):  # unset, empty or relative: ignored (the XDG rule)
        base = os.path.join(home, ".cache")
    try:  # root under sudo with the user's HOME kept: the user could write root's code
        owner = os.stat(home).st_uid
    except OSError:
        return None
    if tag is None or not os.path.isabs(base) or owner != os.geteuid():
        return None
    from reconciler.digest import sha256

    here = os.path.dirname(os.path.abspath(__file__)).encode("utf-8", "surrogateescape")
    name = f"{sha256(here).hexdigest()[:16]}.{tag}.methods"
    return os.path.join(base, "reconciler", "values", name)


#: :func:`_kept_path`, found at the first compile ("": not yet); None: compiled methods
#: are kept in this process only.
_KEPT: str | None = ""
#: The first bytes of that file: the importer's magic number (the bytecode's format).
_MAGIC: bytes = getattr(sys.modules.get("_frozen_importlib_external"), "MAGIC_NUMBER", b"")
#: A file that grew past this many sources (old classes' methods) starts again.
_KEEP_AT_MOST = 400
#: Source of a ``__create__`` -> its code: what the file held, and what this process added.
_codes: dict[str, CodeType] | None = None
_used: set[str] = set()
_compiled_here: list[str] = []  # what this process compiled (written out at exit)
_CODE_TYPE = type(_Missing.__repr__.__code__)  # types.CodeType, without importing types


def _compiled(source: str) -> CodeType:
    """The code of ``source``: from the kept file when a process compiled it before.

    Compiling is most of what defining a value class's methods costs (~0.2 ms a class,
    some thirty classes a run); loading the kept code objects of all of them, ~0.05 ms.
    The key is the whole source, so an entry can only be the code of that same text.
    """
    global _codes, _KEPT
    if _codes is None:
        if _KEPT == "":
            _KEPT = _kept_path()
        _codes = _read_kept(_KEPT)
    code = _codes.get(source)
    if code is None:
        code = _codes[source] = compile(source, "<string>", "exec")
        if not _compiled_here and _KEPT is not None and not sys.dont_write_bytecode:
            import atexit

            atexit.register(_keep, _KEPT)  # as Python writes bytecode: not when told not to
        _compiled_here.append(source)
    _used.add(source)
    return code


def _read_kept(path: str | None) -> dict[str, CodeType]:
    """The sources and code objects kept at ``path``; empty when it is missing, damaged or
    written by another Python (a miss: the methods are compiled again)."""
    if path is None or not _MAGIC:
        return {}
    try:
        from reconciler.tempfiles import private

        with open(path, "rb") as f:
            if not private(f.fileno(), path):
                return {}  # code only this user could have written is loaded
            data = f.read()
        if data[: len(_MAGIC)] != _MAGIC:
            return {}
        table = marshal.loads(data[len(_MAGIC) :])
    except (OSError, ValueError, EOFError, TypeError):
        return {}
    if type(table) is not dict or not all(
        type(k) is str and type(v) is _CODE_TYPE for k, v in table.items()
    ):
        return {}
    return table


def _keep(path: str) -> None:
    """Write this process's compiled methods (and those kept before) to ``path``,
    atomically; nothing when it cannot be written (no cache directory can be made)."""
    table = dict(_codes or {})
    if len(table) > _KEEP_AT_MOST:
        table = {s: c for s, c in table.items() if s in _used}
    from reconciler.tempfiles import replace_file

    try:
        replace_file(path, _MAGIC + marshal.dumps(table), ".values.")
    except OSError:
        return


#: What one ``exec`` makes: ``__init__`` at the first instance; the others, which many
#: values never need, together at the first call of one of them.
_CONSTRUCT = ("__init__",)
_COMPARE = ("__repr__", "__eq__", "__hash__")


def _init(self: Any, *args: Any, **kwargs: Any) -> None:
    _realize(_owner(self), _CONSTRUCT).__init__(self, *args, **kwargs)


def _repr(self: object) -> str:
    text: str = _realize(_owner(self), _COMPARE).__repr__(self)
    return text


def _eq(self: object, other: object) -> Any:
    return _realize(_owner(self), _COMPARE).__eq__(self, other)


def _hash(self: object) -> int:
    number: int = _realize(_owner(self), _COMPARE).__hash__(self)
    return number


_STAND_INS: dict[str, object] = {
    "__init__": _init, "__repr__": _repr, "__eq__": _eq, "__hash__": _hash,
}  # fmt: skip


def _source(
    names: tuple[str, ...], defaults: dict[str, object], setters: str, made: tuple[str, ...]
) -> str:
    """The text of ``__create__(...)``, which returns the methods ``made``, in that order.

    ``setters`` is how ``__init__`` sets a field: "slot" through the slot's own setter
    (what ``object.__setattr__`` calls for it, minus finding it: ~30% fewer instructions
    per instance), "object" through ``object.__setattr__``, "plain" by assignment.
    """
    factories = {n for n, d in defaults.items() if isinstance(d, _Factory)}
    params = "".join(
        f", {n}=__MISSING" if n in factories else f", {n}=__d_{n}" if n in defaults else f", {n}"
        for n in names
    )
    body = []
    for n in names:
        item = f"__f_{n}() if {n} is __MISSING else {n}" if n in factories else n
        if setters == "slot":
            body.append(f"  __s_{n}(self, {item})")
        elif setters == "object":
            body.append(f"  __sa(self, {n!r}, {item})")
        else:
            body.append(f"  self.{n} = {item}")
    mine = "".join(f"self.{n}," for n in names)
    theirs = "".join(f"other.{n}," for n in names)
    shown = ", ".join(f"{n}={{self.{n}!r}}" for n in names)
    methods = {
        "__init__": f" def __init__(self{params}):\n" + ("\n".join(body) or "  pass"),
        "__repr__": f" def __repr__(self):\n  return f'{{self.__class__.__qualname__}}({shown})'",
        "__eq__": " def __eq__(self, other):\n  if other.__class__ is self.__class__:\n"
        f"   return ({mine})==({theirs})\n  return NotImplemented",
        "__hash__": f" def __hash__(self):\n  return hash(({mine}))",
    }
    args = ["__sa", "__MISSING"]
    args += [f"__f_{n}" if n in factories else f"__d_{n}" for n in defaults]
    args += [f"__s_{n}" for n in names] if setters == "slot" else []
    text = f"def __create__({', '.join(args)}):\n" + "\n".join(methods[m] for m in made)
    return text + f"\n return {', '.join(made)},\n"


def _is_classvar(annotation: object) -> bool:
    text = annotation if isinstance(annotation, str) else str(annotation)
    return text.startswith(("ClassVar", "typing.ClassVar"))


def _build(cls: type, frozen: bool, slots: bool) -> type:
    own = dict(cls.__dict__)
    if any("__value_fields__" in vars(base) for base in cls.__mro__[1:]):
        raise TypeError(f"value class {cls.__qualname__} cannot derive from another value class")
    annotations = own.get("__annotations__", {})
    names = tuple(n for n, a in annotations.items() if not _is_classvar(a))
    defaults: dict[str, object] = {}
    for n in names:
        if n in own:
            default = own[n]
            if type(default).__hash__ is None:  # a list, dict or set: one shared by all
                raise ValueError(
                    f"mutable default {type(default)} for field {n} is not allowed:"
                    " use default_factory"
                )
            defaults[n] = default
        elif defaults:
            raise TypeError(f"non-default argument {n!r} follows default argument")
    if frozen and ("__setattr__" in own or "__delattr__" in own):
        which = "__setattr__" if "__setattr__" in own else "__delattr__"
        raise TypeError(f"Cannot overwrite attribute {which} in class {cls.__name__}")
    # As dataclasses: a __hash__ of the body is kept; None there only means it has __eq__.
    own_hash = own.get("__hash__", _MISSING)
    explicit_hash = not (own_hash is _MISSING or (own_hash is None and "__eq__" in own))
    made = tuple(m for m in ("__init__", "__repr__", "__eq__") if m not in own)
    if frozen and not explicit_hash:
        made += ("__hash__",)
    if slots:
        for n in names:
            own.pop(n, None)
        own.pop("__dict__", None)
        own.pop("__weakref__", None)
        own["__slots__"] = names
        qualname = cls.__qualname__
        cls = type(cls)(cls.__name__, cls.__bases__, own)
        cls.__qualname__ = qualname
    else:
        for n in defaults.keys() & vars(cls).keys():
            if isinstance(defaults[n], _Factory):
                delattr(cls, n)
    extra: dict[str, object] = {m: _STAND_INS[m] for m in made}
    extra.update(__match_args__=names, __value_fields__=names)
    if frozen:
        extra.update(__setattr__=_frozen_setattr, __delattr__=_frozen_delattr)
    elif not explicit_hash:
        extra["__hash__"] = None  # mutable and compared by value: unhashable
    if frozen and slots:  # copy and pickle set the fields through object.__setattr__
        extra.update(__getstate__=_getstate, __setstate__=_setstate)
    for name, item in extra.items():
        setattr(cls, name, item)
    _PENDING[cls] = (defaults, "plain" if not frozen else "slot" if slots else "object", made)
    return cls


if TYPE_CHECKING:

    @overload
    @dataclass_transform(frozen_default=True, field_specifiers=(field,))
    def value(cls: type[T], /) -> type[T]: ...

    @overload
    def value(
        cls: None = None, /, *, frozen: bool = True, slots: bool = True
    ) -> Callable[[type[T]], type[T]]: ...


def value(cls: type | None = None, /, *, frozen: bool = True, slots: bool = True) -> Any:
    """Make ``cls`` a value class: ``@value``, or ``@value(frozen=False)`` for a mutable one.

    ``slots=False`` keeps the instances' ``__dict__`` (a ``functools.cached_property``
    needs one; ``vars()`` of a mutable value too).
    """

    def wrap(cls: type) -> type:
        return _build(cls, frozen, slots)

    return wrap if cls is None else wrap(cls)
