"""``--label COLUMN``: where this run's label is, when it is not where the model says.

A model's ``label=`` names one column; the outcome joiner always writes its
label as ``label`` (the model's default), while a spine a user brings may
call it ``bought`` or ``clicked``. Rather than two declarations of one model,
``loopline train --label bought`` reads the label from that column for this
run (recorded in the version's manifest, so ``--reproduce`` finds it again).

>>> from loopline import App
>>> from loopline.models.declarations import Model
>>> app = App("shop", models=[Model("buys", trainer=object, entity="member")])
>>> relabelled(app, "buys", "bought").model("buys").label
'bought'
>>> relabelled(app, "buys", None) is app
True
"""

from __future__ import annotations

import dataclasses

import click

from loopline.app import App

label_option = click.option(
    "--label",
    metavar="COLUMN",
    help="The label's column in the spine (or field of the examples) for this run, when "
    "it is not the model's label= (default 'label', the field the outcome joiner writes).",
)


def relabelled(app: App, model_name: str, label: str | None) -> App:
    """`app` with model `model_name` reading its label from `label` (as it is for None)."""
    if label is None:
        return app
    models = [
        dataclasses.replace(m, label=label) if m.name == model_name else m for m in app.models
    ]
    return dataclasses.replace(app, models=models)
