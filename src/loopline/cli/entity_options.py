"""``--entity``: which entities a spine holds, for ``dataset build`` and ``train --spine``.

``--entity member`` names the one entity of a spine (its id column is
``entity`` or the entity's key field); repeated, or as ``NAME=COLUMN``, it
names a spine about several related entities, each id in its own column:
``--entity user=user_id --entity item=item_id`` builds user, item and
user x item features. One entity named twice is an error, not a silent
override.

>>> parse_entities(("member",))
('member', None)
>>> parse_entities(("user=user_id", "item=item_id"))
(None, {'user': 'user_id', 'item': 'item_id'})
>>> parse_entities(("user=user_id", "user=uid"))
Traceback (most recent call last):
...
loopline.cli.errors.CLIError: --entity user is given twice (user=user_id, user=uid): name each entity once
"""

from __future__ import annotations

from collections.abc import Mapping

import click

from loopline.app import App
from loopline.cli.errors import CLIError

entity_option = click.option(
    "--entity",
    "entity_values",
    metavar="NAME[=COLUMN]",
    multiple=True,
    help="The entity the spine holds, when the features describe several; repeat it as "
    "NAME=COLUMN for a spine about related entities, one id column each (e.g. "
    "--entity user=user_id --entity item=item_id: user, item and user x item features).",
)


def parse_entities(values: tuple[str, ...]) -> tuple[str | None, dict[str, str | None] | None]:
    """The one entity named (a bare ``--entity NAME``), or the related ones (name -> column;
    None: the entity's key field)."""
    if len(values) == 1 and "=" not in values[0]:
        return values[0].strip() or None, None
    if not values:
        return None, None
    named: dict[str, str | None] = {}
    given: dict[str, list[str]] = {}
    for value in values:
        name, sep, column = (part.strip() for part in value.partition("="))
        if not name or (sep and not column):
            raise CLIError(f"--entity {value!r}: use NAME or NAME=COLUMN (e.g. user=user_id)")
        given.setdefault(name, []).append(value)
        if len(given[name]) > 1:
            raise CLIError(
                f"--entity {name} is given twice ({', '.join(given[name])}): name each entity once"
            )
        named[name] = column or None
    return None, named


def entity_columns(app: App, named: Mapping[str, str | None]) -> dict[str, str]:
    """`named` with each missing column filled in by the entity's key field (``user_id``)."""
    keys = {g.entity.name: g.entity.key for g in (*app.features.aggregations, *app.features.tables)}
    return {name: column or keys.get(name, name) for name, column in named.items()}
