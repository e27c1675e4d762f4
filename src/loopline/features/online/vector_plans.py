"""Which features a vector reads, decided once per (entities, names).

A vector is of one entity (a member) or of several related ones (a member
and a candidate item): the features of each, plus the derived features whose
inputs are all among them. Derived features may read other derived features,
of any of the entities; they run in dependency order, and a cycle is a
declaration error.

>>> from loopline.features import Derived, Entity, FeatureSet, Table, TableFeature
>>> member, item = Entity("member", "member_id"), Entity("item", "item_id")
>>> features = FeatureSet(tables=[
...     Table("profiles", member, [TableFeature("country", "country")]),
...     Table("items", item, [TableFeature("item_country", "country")]),
... ], derived=[Derived("same_country", ("country", "item_country"), lambda a, b: a == b)])
>>> ordered = in_dependency_order(features.derived)
>>> VectorPlan.of(features, ordered, "member", None).names
['country']
>>> VectorPlan.of(features, ordered, ("member", "item"), None).names
['country', 'item_country', 'same_country']
>>> VectorPlan.of(features, ordered, "member", ["same_country"])
Traceback (most recent call last):
...
loopline.features.windows.DeclarationError: 'same_country' are not features of entity \
'member': 'same_country' reads features of entities member, item; read it with \
vector({'member': ID, 'item': ID})
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline.features.declarations import DeclarationError, Derived, FeatureSet


class VectorPlan:
    """Which groups, tables and derived features one kind of vector reads, decided once.

    `groups` and `tables` index ``features.aggregations`` and ``features.tables``;
    `group_entities` and `table_entities` are the (index, entity name) pairs of
    the same, for a vector of several entities to pick each one's id.
    """

    def __init__(
        self,
        features: FeatureSet,
        groups: list[int],
        tables: list[int],
        derived: list[Derived],
        names: list[str],
    ) -> None:
        self.groups, self.tables, self.derived, self.names = groups, tables, derived, names
        self.group_entities = [(i, features.aggregations[i].entity.name) for i in groups]
        self.table_entities = [(i, features.tables[i].entity.name) for i in tables]

    @classmethod
    def of(
        cls,
        features: FeatureSet,
        ordered: list[Derived],
        entity_name: str | Sequence[str],
        names: Sequence[str] | None,
    ) -> VectorPlan:
        """The plan of a vector of `entity_name` (or of each entity of a sequence of names)."""
        entities = (entity_name,) if isinstance(entity_name, str) else tuple(entity_name)
        declared = _entities(features)
        if not entities:
            raise DeclarationError(
                "a vector needs at least one entity: give {name: id}, with names among "
                f"{', '.join(declared) or 'none'}"
            )
        for name in entities:
            if name not in declared:
                raise DeclarationError(
                    f"no features are declared for entity {name!r}: "
                    f"entities are {', '.join(sorted(declared)) or 'none'}"
                )
        groups = [i for i, g in enumerate(features.aggregations) if g.entity.name in entities]
        tables = [i for i, t in enumerate(features.tables) if t.entity.name in entities]
        own = {f.name for i in groups for f in features.aggregations[i].features}
        own |= {f.name for i in tables for f in features.tables[i].features}
        derived = []
        for d in ordered:
            if all(name in own for name in d.inputs):
                own.add(d.name)
                derived.append(d)
        if names is None:
            return cls(features, groups, tables, derived, [n for n in features.names() if n in own])
        foreign = [n for n in names if n not in own]
        if foreign:
            for name in foreign:
                features[name]  # raises for a name that is not declared at all
            raise DeclarationError(_not_available(features, entity_name, foreign))
        needed = set(names)
        for d in reversed(derived):
            if d.name in needed:
                needed.update(d.inputs)
        return cls(features, groups, tables, [d for d in derived if d.name in needed], list(names))


def in_dependency_order(derived: Sequence[Derived]) -> list[Derived]:
    """Derived features so that each comes after the derived features it reads."""
    by_name = {d.name: d for d in derived}
    ordered: list[Derived] = []
    state: dict[str, str] = {}

    def visit(d: Derived, path: tuple[str, ...]) -> None:
        if state.get(d.name) == "done":
            return
        if d.name in path:
            cycle = " -> ".join((*path[path.index(d.name) :], d.name))
            raise DeclarationError(f"derived features depend on each other in a cycle: {cycle}")
        for name in d.inputs:
            if name in by_name:
                visit(by_name[name], (*path, d.name))
        state[d.name] = "done"
        ordered.append(d)

    for d in derived:
        visit(d, ())
    return ordered


def entities_of(features: FeatureSet, name: str) -> list[str]:
    """The entities (in declaration order) whose features feature `name` reads.

    Derived features read what their inputs read; a derived feature of no
    inputs reads none.
    """
    owner = {f.name: g.entity.name for g in features.aggregations for f in g.features}
    owner |= {f.name: t.entity.name for t in features.tables for f in t.features}
    by_name = {d.name: d for d in features.derived}
    found: set[str] = set()
    seen: set[str] = set()
    todo = [name]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        if current in owner:
            found.add(owner[current])
        elif current in by_name:
            todo.extend(by_name[current].inputs)
    return [e for e in _entities(features) if e in found]


def _entities(features: FeatureSet) -> list[str]:
    """Every entity with features, in declaration order."""
    return list(dict.fromkeys(g.entity.name for g in (*features.aggregations, *features.tables)))


def _not_available(
    features: FeatureSet, entity_name: str | Sequence[str], foreign: list[str]
) -> str:
    if isinstance(entity_name, str):
        given: Sequence[str] = (entity_name,)
        message = f"{', '.join(map(repr, foreign))} are not features of entity {entity_name!r}"
    else:
        given = tuple(entity_name)
        message = (
            f"{', '.join(map(repr, foreign))} are not features of entities "
            f"{', '.join(map(repr, given))}"
        )
    hints = []
    for name in foreign:
        needs = entities_of(features, name)
        if any(e not in given for e in needs):
            if len(needs) == 1:
                hints.append(f"{name!r} is a feature of entity {needs[0]!r}")
            else:
                ids = ", ".join(f"{e!r}: ID" for e in needs)
                hints.append(
                    f"{name!r} reads features of entities {', '.join(needs)}; "
                    f"read it with vector({{{ids}}})"
                )
    return message + (": " + "; ".join(hints) if hints else "")
