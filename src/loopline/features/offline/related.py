"""Spines about several related entities: a member and a candidate item, in one row.

A user x item dataset has one id column per entity (``member_id``,
``item_id``) and a time column; each row gets the features of every entity
named, and the derived features that read several (``same_country``), as
the online store's ``vector({"member": ..., "item": ...})`` gives them. The
id columns keep their names in the dataset; an empty id is an entity without
records (it gets the defaults).

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.csv"
>>> _ = path.write_text("member_id,item_id,at,label\\n007,i1,1700000000000,1\\n8,,1700000001000,0\\n")
>>> spine = read_related_spine(path, {"member": "member_id", "item": "item_id"})
>>> spine.table.to_pylist()  # doctest: +NORMALIZE_WHITESPACE
[{'member_id': '007', 'item_id': 'i1', 'at': 1700000000000, 'label': 1},
 {'member_id': '8', 'item_id': None, 'at': 1700000001000, 'label': 0}]
>>> read_related_spine(path, {"member": "member_id", "item": "item"})
Traceback (most recent call last):
...
loopline.features.offline.manifests.DatasetError: spine file ... has no column 'item' for entity 'item' (--entity item=item); its columns are ['member_id', 'item_id', 'at', 'label']
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from loopline.app import App
from loopline.features.offline.manifests import DatasetError
from loopline.features.offline.spines import Spine, read_spine_file


def read_related_spine(
    path: str | Path, entities: Mapping[str, str], time_column: str | None = None
) -> Spine:
    """The spine in the file at `path` whose column `entities[name]` holds entity `name`'s ids.

    Read as `read_spine_file` reads a spine (the same formats and times), the
    first entity's column standing in for its entity column, then given back
    its name; the other id columns pass through as text.
    """
    origin = f"spine file {str(path)!r}"
    columns = list(entities.values())
    first = columns[0]
    spine = read_spine_file(
        path, key_field=first, entity_column=first, time_column=time_column, text=columns
    )
    table = spine.table.rename_columns(
        [first if n == "entity" else n for n in spine.table.column_names]
    )
    for name, column in entities.items():
        if column not in table.column_names:
            raise DatasetError(
                f"{origin} has no column {column!r} for entity {name!r} (--entity "
                f"{name}={column}); its columns are {table.column_names}"
            )
    for column in columns[1:]:
        ids = table.column(column).cast(pa.string())
        ids = pc.if_else(pc.equal(ids, ""), pa.scalar(None, pa.string()), ids)  # CSV's empty
        table = table.set_column(table.column_names.index(column), column, ids)
    return Spine(table, ",".join(columns), spine.time_column)


def entity_view(spine: pa.Table, column: str) -> pa.Table:
    """The (``entity``, ``at``) rows of one entity of a related spine, as single-entity code
    reads a spine."""
    return pa.table({"entity": spine.column(column), "at": spine.column("at")})


def spine_entities(
    app: App, entity: str | None, entities: Mapping[str, str] | None
) -> tuple[str, str, list[str]]:
    """The spine's entity (its name, key field) and the topics its features read, sorted;
    for related `entities`, their names (comma-separated), the first's key and all topics."""
    if not entities:
        return _entity(app, entity)
    named = [_entity(app, name) for name in entities]
    return ",".join(entities), named[0][1], sorted({t for _, _, ts in named for t in ts})


def _entity(app: App, entity: str | None) -> tuple[str, str, list[str]]:
    """The spine's entity (name and key field) and the topics its features read, sorted."""
    declared = {g.entity.name: g.entity for g in app.features.aggregations}
    for t in app.features.tables:
        declared.setdefault(t.entity.name, t.entity)
    if entity is None:
        if len(declared) != 1:
            raise DatasetError(
                f"the features of app {app.name!r} describe {len(declared)} entities "
                f"({', '.join(declared) or 'none'}); say which one the spine holds with "
                "--entity NAME"
            )
        entity = next(iter(declared))
    if entity not in declared:
        raise DatasetError(
            f"no feature of app {app.name!r} describes entity {entity!r}; "
            f"declared are {sorted(declared)}"
        )
    readers = [*app.features.aggregations, *app.features.tables]
    topics = sorted({r.source for r in readers if r.entity.name == entity})
    return entity, declared[entity].key, topics
