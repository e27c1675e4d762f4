"""Schema compatibility: can data written with one version of a contract be read with another?

A contract's schema is an Avro schema, given as parsed JSON (the content of an
``.avsc`` file). `can_read` applies the Avro 1.11 schema-resolution rules
statically; `check` applies a compatibility mode with Confluent Schema Registry
semantics (BACKWARD: the new schema reads data written with the previous one;
FORWARD: the previous schema reads data written with the new one; FULL: both;
``*_transitive``: against every earlier version, not only the latest).

>>> v1 = {"type": "record", "name": "Click", "fields": [{"name": "item_id", "type": "string"}]}
>>> v2 = {"type": "record", "name": "Click", "fields": [
...     {"name": "item_id", "type": "string"},
...     {"name": "country", "type": "string"}]}
>>> check("forward", v2, [v1])
[]
>>> [p.message for p in check("backward", v2, [v1])]
["field 'country' was added without a default (give it a default or make it optional)"]

Messages are phrased from the user's side of a change, old -> new, whichever
schema is the reader. Deliberate simplifications: logical types are ignored
(only the underlying type matters), and a reader union accepts a writer type
when *any* branch can read it (as Avro's Java checker does; the spec's runtime
picks the first branch that matches by type and name only).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, TypeAlias, TypeVar, get_args

Schema: TypeAlias = "str | list[Any] | dict[str, Any]"
Mode = Literal[
    "backward",
    "forward",
    "full",
    "none",
    "backward_transitive",
    "forward_transitive",
    "full_transitive",
]
"""A contract's compatibility rule: ``backward`` (the default), ``forward``, ``full``, ``none``,
or a ``*_transitive`` variant checked against every earlier version, not only the latest."""

__all__ = [
    "IncompatibleSchema",
    "Incompatibility",
    "Mode",
    "Schema",
    "can_read",
    "check",
    "problems_by_version",
]

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
# writer type -> reader types that can read it (Avro 1.11, "Schema Resolution")
PROMOTIONS: dict[str, frozenset[str]] = {
    "int": frozenset({"long", "float", "double"}),
    "long": frozenset({"float", "double"}),
    "float": frozenset({"double"}),
    "string": frozenset({"bytes"}),
    "bytes": frozenset({"string"}),
}
# mode -> (new reads previous, previous reads new, against every previous version)
_MODES: dict[str, tuple[bool, bool, bool]] = {
    "none": (False, False, False),
    "backward": (True, False, False),
    "forward": (False, True, False),
    "full": (True, True, False),
    "backward_transitive": (True, False, True),
    "forward_transitive": (False, True, True),
    "full_transitive": (True, True, True),
}
assert set(_MODES) == set(get_args(Mode))


@dataclass(frozen=True)
class Incompatibility:
    """One reason a reader schema cannot read a writer schema's data.

    ``path`` locates it: ``"item_id"``, ``"address.city"``, ``"tags[]"`` (array
    items), ``"scores{}"`` (map values), ``""`` for the schema itself.
    """

    path: str
    message: str


class IncompatibleSchema(ValueError):
    """A new contract version breaks the subject's compatibility mode.

    >>> problem = Incompatibility("n", "field 'n' changed type string -> long")
    >>> print(IncompatibleSchema("clicks", 3, 2, "backward", [problem]))
    contract 'clicks' v3 is not backward compatible with v2: field 'n' changed type string -> long
    """

    def __init__(
        self,
        subject: str,
        new_version: int,
        against_version: int,
        mode: str,
        problems: Sequence[Incompatibility],
    ) -> None:
        self.subject = subject
        self.new_version = new_version
        self.against_version = against_version
        self.mode = mode
        self.problems = list(problems)
        reasons = "; ".join(p.message for p in self.problems) or "no reason given"
        super().__init__(
            f"contract '{subject}' v{new_version} is not {mode.replace('_', ' ')} "
            f"compatible with v{against_version}: {reasons}"
        )

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.subject, self.new_version, self.against_version, self.mode, self.problems)
        return (type(self), args)


def can_read(reader: Schema, writer: Schema) -> list[Incompatibility]:
    """Why data written with `writer` cannot be read with `reader`; empty when it can.

    Messages assume `reader` is the newer schema ("field 'x' was added ...").
    """
    return _Resolver(writer_is_old=True).read(_parse(reader), _parse(writer), "")


def problems_by_version(
    mode: Mode, new: Schema, previous: Sequence[Schema]
) -> dict[int, list[Incompatibility]]:
    """The problems `mode` finds, keyed by index into `previous`; only failing versions appear.

    Useful to name the version in `IncompatibleSchema`.
    """
    if mode not in _MODES:
        raise ValueError(f"unknown compatibility mode {mode!r}; use one of {', '.join(_MODES)}")
    new_reads_old, old_reads_new, transitive = _MODES[mode]
    if not previous or not (new_reads_old or old_reads_new):
        return {}
    new_node = _parse(new)
    indices = range(len(previous)) if transitive else [len(previous) - 1]
    found: dict[int, list[Incompatibility]] = {}
    for i in indices:
        old_node = _parse(previous[i])
        problems: list[Incompatibility] = []
        if new_reads_old:
            problems += _Resolver(writer_is_old=True).read(new_node, old_node, "")
        if old_reads_new:
            problems += _Resolver(writer_is_old=False).read(old_node, new_node, "")
        if problems:
            found[i] = _dedupe(problems)
    return found


def check(mode: Mode, new: Schema, previous: Sequence[Schema]) -> list[Incompatibility]:
    """Why `new` breaks `mode` against `previous` (all earlier versions, oldest first).

    backward: new reads the latest; forward: the latest reads new; full: both;
    ``*_transitive``: the same against every previous version; none: never a problem.
    """
    by_version = problems_by_version(mode, new, previous)
    return _dedupe([p for i in sorted(by_version) for p in by_version[i]])


# -- parsed schemas: named types resolved, recursion kept as object cycles --------------------


@dataclass(eq=False)
class _Named:
    name: str  # full name
    aliases: frozenset[str]  # as written and fully qualified

    @property
    def short(self) -> str:
        return self.name.rpartition(".")[2]


@dataclass(eq=False)
class _Field:
    name: str
    aliases: tuple[str, ...]
    has_default: bool
    type: _Node


@dataclass(eq=False)
class _Record(_Named):
    fields: list[_Field] = field(default_factory=list)


@dataclass(eq=False)
class _Enum(_Named):
    symbols: tuple[str, ...] = ()
    default: str | None = None


@dataclass(eq=False)
class _Fixed(_Named):
    size: int = 0


@dataclass(eq=False)
class _Collection:
    kind: str  # "array" or "map"
    inner: _Node  # its items or values


@dataclass(eq=False)
class _Union:
    branches: tuple[_Node, ...]


_Node: TypeAlias = "str | _Union | _Collection | _Record | _Enum | _Fixed"
_T = TypeVar("_T")


def _parse(schema: Schema) -> _Node:
    return _Parser().parse(schema, "")


class _Parser:
    """Turns one schema's JSON into nodes, resolving type names as the Avro spec does."""

    def __init__(self) -> None:
        self.named: dict[str, _Named] = {}

    def parse(self, schema: Any, namespace: str) -> _Node:
        if isinstance(schema, str):
            return schema if schema in PRIMITIVES else self._lookup(schema, namespace)
        if isinstance(schema, list):
            return _Union(tuple(self.parse(branch, namespace) for branch in schema))
        if isinstance(schema, dict):
            kind = schema.get("type")
            if kind in ("record", "error", "enum", "fixed"):
                return self._named(schema, kind, namespace)
            if kind in ("array", "map"):
                inner = _key(schema, "items" if kind == "array" else "values")
                return _Collection(kind, self.parse(inner, namespace))
            if kind is not None:  # e.g. {"type": "long", "logicalType": "timestamp-millis"}
                return self.parse(kind, namespace)
        raise ValueError(f"not an Avro schema: {schema!r} (expected a type name, list or object)")

    def _lookup(self, name: str, namespace: str) -> _Named:
        full = name if "." in name or not namespace else f"{namespace}.{name}"
        for candidate in (full, name):  # Java Avro falls back to the null namespace
            if candidate in self.named:
                return self.named[candidate]
        raise ValueError(f"unknown type name {name!r}: define the named type before using it")

    def _named(self, schema: dict[str, Any], kind: str, namespace: str) -> _Named:
        name = str(_key(schema, "name"))
        explicit = schema.get("namespace")
        if "." in name:
            full = name
        elif explicit is not None:
            full = f"{explicit}.{name}" if explicit else name
        else:
            full = f"{namespace}.{name}" if namespace else name
        space = full.rpartition(".")[0]
        written = [str(a) for a in schema.get("aliases", ())]
        qualified = [a if "." in a or not space else f"{space}.{a}" for a in written]
        aliases = frozenset(written + qualified)
        node: _Named
        if kind == "enum":
            node = _Enum(full, aliases, tuple(_key(schema, "symbols")), schema.get("default"))
        elif kind == "fixed":
            node = _Fixed(full, aliases, int(_key(schema, "size")))
        else:
            node = _Record(full, aliases)
        self.named[full] = node  # before the fields, so recursive references resolve
        if isinstance(node, _Record):
            for f in _key(schema, "fields"):
                name_f, aliases_f = str(_key(f, "name")), tuple(f.get("aliases", ()))
                type_f = self.parse(_key(f, "type"), space)
                node.fields.append(_Field(name_f, aliases_f, "default" in f, type_f))
        return node


def _key(schema: dict[str, Any], key: str) -> Any:
    try:
        return schema[key]
    except KeyError:
        raise ValueError(f"Avro schema {schema!r} has no {key!r}") from None


# -- resolution ---------------------------------------------------------------------------------


class _Resolver:
    """One reader-against-writer walk. `writer_is_old` only decides how messages are phrased."""

    def __init__(self, writer_is_old: bool) -> None:
        self.writer_is_old = writer_is_old
        self.in_progress: set[tuple[str, str]] = set()

    def read(self, r: _Node, w: _Node, path: str) -> list[Incompatibility]:
        if isinstance(w, _Union):
            problems: list[Incompatibility] = []
            for branch in w.branches:  # any branch may have been written, so all must be read
                found = self.read(r, branch, path)
                if found and not _matches(r, branch):
                    found = [self._lost_branch(r, w, branch, path)]
                problems += found
            return _dedupe(problems)
        if isinstance(r, _Union):
            attempts = [(branch, self.read(branch, w, path)) for branch in r.branches]
            if any(not found for _, found in attempts):
                return []
            for branch, found in attempts:  # the closest branch explains the failure best
                if _matches(branch, w):
                    return found
            return [self._changed(r, w, path)]
        if not isinstance(r, _Named) or not isinstance(w, _Named) or type(r) is not type(w):
            if not _matches(r, w):  # a different kind, or primitives that do not promote
                return [self._changed(r, w, path)]
            if isinstance(r, _Collection) and isinstance(w, _Collection):
                return self.read(r.inner, w.inner, path + ("[]" if r.kind == "array" else "{}"))
            return []
        if not _names_match(r, w):
            return [self._renamed(r, w, path)]
        if isinstance(r, _Fixed) and isinstance(w, _Fixed) and r.size != w.size:
            old, new = self._old_new(r, w)
            msg = f"{_subject(path)} changed fixed '{r.short}' size {old.size} -> {new.size}"
            return [Incompatibility(path, msg)]
        if isinstance(r, _Enum) and isinstance(w, _Enum):
            return self._enum(r, w, path)
        if isinstance(r, _Record) and isinstance(w, _Record):
            return self._record(r, w, path)
        return []

    def _enum(self, r: _Enum, w: _Enum, path: str) -> list[Incompatibility]:
        if r.default is not None:
            return []
        problems = []
        for symbol in w.symbols:
            if symbol in r.symbols:
                continue
            if self.writer_is_old:
                msg = (
                    f"enum '{r.short}' lost symbol '{symbol}' (old data may hold it; "
                    "keep the symbol or give the enum a default)"
                )
            else:
                msg = (
                    f"enum '{r.short}' gained symbol '{symbol}', which readers of the "
                    "previous schema do not know (they need an enum default to read it)"
                )
            problems.append(Incompatibility(path, msg))
        return problems

    def _record(self, r: _Record, w: _Record, path: str) -> list[Incompatibility]:
        key = (r.name, w.name)
        if key in self.in_progress:  # a recursive type: assume the cycle reads, check the rest
            return []
        self.in_progress.add(key)
        try:
            by_name = {f.name: f for f in w.fields}
            problems: list[Incompatibility] = []
            for f in r.fields:
                here = f"{path}.{f.name}" if path else f.name
                match = next((by_name[n] for n in (f.name, *f.aliases) if n in by_name), None)
                if match is not None:
                    problems += self.read(f.type, match.type, here)
                elif not f.has_default:
                    problems.append(Incompatibility(here, self._missing(here)))
            return problems  # fields only the writer has are skipped by readers
        finally:
            self.in_progress.discard(key)

    def _old_new(self, r: _T, w: _T) -> tuple[_T, _T]:
        return (w, r) if self.writer_is_old else (r, w)

    def _changed(self, r: _Node, w: _Node, path: str) -> Incompatibility:
        old, new = self._old_new(r, w)
        return Incompatibility(path, f"{_subject(path)} changed type {_show(old)} -> {_show(new)}")

    def _lost_branch(self, r: _Node, w: _Node, branch: _Node, path: str) -> Incompatibility:
        old, new = self._old_new(r, w)
        change = f"{_subject(path)} changed type {_show(old)} -> {_show(new)}"
        if self.writer_is_old:
            why = f"which cannot read the {_show(branch)} values old data may hold"
        else:
            why = f"whose {_show(branch)} values readers of the previous schema cannot read"
        return Incompatibility(path, f"{change}, {why}")

    def _renamed(self, r: _Named, w: _Named, path: str) -> Incompatibility:
        old, new = self._old_new(r, w)
        kind = _show(old).partition(" ")[0]
        msg = f"{_subject(path)} changed {kind} name '{old.short}' -> '{new.short}'"
        if self.writer_is_old:
            msg += f" (add '{old.name}' to the new {kind}'s aliases)"
        else:
            msg += f" (readers of the previous schema only accept '{old.short}'; keep the name)"
        return Incompatibility(path, msg)

    def _missing(self, here: str) -> str:
        if self.writer_is_old:
            return (
                f"field '{here}' was added without a default "
                "(give it a default or make it optional)"
            )
        return (
            f"field '{here}' was removed, but readers of the previous schema require it "
            "(it has no default there; keep the field)"
        )


def _matches(r: _Node, w: _Node) -> bool:
    """Whether `r` reads `w` at the top level: same kind and name, or a promotion."""
    if isinstance(r, _Union):
        return any(_matches(branch, w) for branch in r.branches)
    if isinstance(r, str) and isinstance(w, str):
        return r == w or r in PROMOTIONS.get(w, ())
    if isinstance(r, _Named) and isinstance(w, _Named):
        return type(r) is type(w) and _names_match(r, w)
    return isinstance(r, _Collection) and isinstance(w, _Collection) and r.kind == w.kind


def _names_match(r: _Named, w: _Named) -> bool:
    return r.short == w.short or w.name in r.aliases or w.short in r.aliases


def _show(node: _Node) -> str:
    if isinstance(node, str):
        return node
    if isinstance(node, _Union):
        return f"union[{', '.join(_show(b) for b in node.branches)}]"
    if isinstance(node, _Collection):
        return f"{node.kind}<{_show(node.inner)}>"
    return f"{type(node).__name__[1:].lower()} {node.short}"


def _subject(path: str) -> str:
    """``"tags[]"`` -> ``"field 'tags' items:"``, ``"a.b"`` -> ``"field 'a.b'"``."""
    base, parts = path, []
    while base.endswith(("[]", "{}")):
        parts.insert(0, "items" if base.endswith("[]") else "values")
        base = base[:-2]
    subject = f"field '{base}'" if base else "the schema"
    return f"{subject} {' '.join(parts)}:" if parts else subject


def _dedupe(problems: list[Incompatibility]) -> list[Incompatibility]:
    return list(dict.fromkeys(problems))
