"""Which features a vector of one entity reads, decided once per (entity, names).

Derived features may read other derived features; they run in dependency
order, and a cycle is a declaration error.
"""

from __future__ import annotations

from collections.abc import Sequence

from loopline.features.declarations import DeclarationError, Derived, FeatureSet


class VectorPlan:
    """Which groups, tables and derived features one kind of vector reads, decided once."""

    def __init__(
        self, groups: list[int], tables: list[int], derived: list[Derived], names: list[str]
    ) -> None:
        self.groups, self.tables, self.derived, self.names = groups, tables, derived, names

    @classmethod
    def of(
        cls,
        features: FeatureSet,
        ordered: list[Derived],
        entity_name: str,
        names: Sequence[str] | None,
    ) -> VectorPlan:
        groups = [i for i, g in enumerate(features.aggregations) if g.entity.name == entity_name]
        tables = [i for i, t in enumerate(features.tables) if t.entity.name == entity_name]
        if not groups and not tables:
            known = {g.entity.name for g in (*features.aggregations, *features.tables)}
            raise DeclarationError(
                f"no features are declared for entity {entity_name!r}: "
                f"entities are {', '.join(sorted(known)) or 'none'}"
            )
        own = {f.name for i in groups for f in features.aggregations[i].features}
        own |= {f.name for i in tables for f in features.tables[i].features}
        derived = []
        for d in ordered:
            if all(name in own for name in d.inputs):
                own.add(d.name)
                derived.append(d)
        if names is None:
            return cls(groups, tables, derived, [n for n in features.names() if n in own])
        foreign = [n for n in names if n not in own]
        if foreign:
            for name in foreign:
                features[name]  # raises for a name that is not declared at all
            raise DeclarationError(
                f"{', '.join(map(repr, foreign))} are not features of entity {entity_name!r}"
            )
        needed = set(names)
        for d in reversed(derived):
            if d.name in needed:
                needed.update(d.inputs)
        return cls(groups, tables, [d for d in derived if d.name in needed], list(names))


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
