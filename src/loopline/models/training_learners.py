"""How labelled examples reach an online trainer: the paths composed once, before the loop.

`loopline.models.online.train_online` hands every example of a stream to a
trainer. Its per-example work is composed here before the loop starts, so the
loop itself does no dispatch it could have done up front:

- the **batch path** (`batch_reader`, `batch_learner`): once the first example
  has shown the stream's shape, a whole batch of record values is decoded in
  one call by msgspec, typed to the model's features (every feature present
  and a number, ints read as floats, other fields skipped, features in the
  model's order), the labels checked and converted in bulk, and the examples
  handed to the model in a tight loop. A plain `RiverTrainer` gets them
  straight into River's ``learn_one``: its own ``learn_one`` would only copy
  the same floats in the same order;
- the **example path** (`extractor`, `learner`): any batch the batch path
  refuses (a tombstone, a value that is not JSON, a missing label or feature,
  a label of the wrong kind, a topic bound to a contract) is read one
  example at a time, and the trainer's ``learn_one`` says what is wrong with
  an example it cannot learn.

Both give the model the same examples in the same order.

>>> from river import linear_model
>>> from loopline.models.trainers import RiverTrainer
>>> trainer = RiverTrainer(linear_model.LogisticRegression())
>>> trainer.learn_one({"spend": 0.5}, 1)  # the first example goes the example path
>>> read = batch_reader(trainer, ("spend",), "label", nested=False)
>>> xs, ys = read([b'{"spend": 2, "label": 1, "at": 7}', b'{"spend": 0.1, "label": false}'])
>>> xs, ys
([{'spend': 2.0}, {'spend': 0.1}], [True, False])
>>> read([b'{"spend": 2, "label": 1}', b'{"spend": null, "label": 0}']) is None
True
>>> batch_learner(trainer, ("spend",))(xs, ys)
"""

from __future__ import annotations

import keyword
import math
import operator
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec

from loopline.app import App
from loopline.log.collector import collector_paused
from loopline.models.declarations import Model
from loopline.models.trainers import Trainer
from loopline.models.training_data import entity_features
from loopline.models.training_examples import TIME_FIELDS

__all__ = ["batch_learner", "batch_reader", "chooser", "extractor", "learner", "scorer"]

Examples = tuple[list[dict[str, float]], list[Any]]

_CLASSES = {0: False, 1: True}  # True and 1.0 hash as 1: one lookup checks and converts
_NUMBERS = frozenset({int, float})
_LABELS = frozenset({int, float, bool})


def _plain_river(trainer: Trainer) -> Any:
    """`trainer` if it is a `RiverTrainer` whose learning and scoring are River's own."""
    from loopline.models.trainers.river import RiverTrainer

    kind = type(trainer)
    plain = kind.learn_one is RiverTrainer.learn_one and kind.predict is RiverTrainer.predict
    return trainer if isinstance(trainer, RiverTrainer) and plain else None


# -- the batch path ---------------------------------------------------------------------


def batch_reader(
    trainer: Trainer,
    names: Sequence[str] | None,
    label: str,
    *,
    nested: bool,
    plain_json: bool = True,
) -> Callable[[list[bytes | None]], Examples | None] | None:
    """A reader of whole batches of values shaped like the first example: ``(features,
    labels)`` with the labels as the trainer learns them (bool for classification, float
    otherwise), or None for a batch it will not vouch for, which then goes the example path.

    None when no batch can be read this way: names that cannot be fields of a class, or
    a topic bound to a contract.
    """
    names = tuple(names or ())
    fields = (*names, label)
    if not plain_json or not names or label in names:
        return None
    if not all(n.isidentifier() and not keyword.iskeyword(n) and n[0] != "_" for n in fields):
        return None
    asdict = msgspec.structs.asdict
    features = msgspec.defstruct("Features", [(n, float) for n in names], gc=False)
    if nested:
        shape = msgspec.defstruct("Example", [("features", features), (label, Any)], gc=False)
    else:
        shape = msgspec.defstruct("Example", [*((n, float) for n in names), (label, Any)], gc=False)
    decode = msgspec.json.Decoder(list[shape]).decode  # type: ignore[valid-type]
    take_features = operator.attrgetter("features")
    take_label = operator.attrgetter(label)
    pop_label = operator.methodcaller("pop", label)
    task = trainer.task

    def read(values: list[bytes | None]) -> Examples | None:
        if None in values:
            return None  # a tombstone: the example path skips it
        # Tens of thousands of dicts of floats at once: they cannot form a cycle, so the
        # collector would only walk them over and over.
        try:
            with collector_paused():
                examples = decode(b"[" + b",".join(values) + b"]")  # type: ignore[arg-type]
                if nested:
                    xs = list(map(asdict, map(take_features, examples)))
                    labels = list(map(take_label, examples))
                else:
                    xs = list(map(asdict, examples))
                    labels = list(map(pop_label, xs))
        except msgspec.DecodeError:
            return None
        return (xs, ys) if (ys := _labels(task, labels)) is not None else None

    return read


def _labels(task: str, labels: list[Any]) -> list[Any] | None:
    """`labels` as the trainer learns them, or None if any is not a label of `task`."""
    if not all(map(_LABELS.__contains__, map(type, labels))):
        return None
    if task == "classification":
        ys = list(map(_CLASSES.get, labels))
        return None if None in ys else ys
    ys = list(map(float, labels))
    if not math.isfinite(sum(ys)) or (task == "ranking" and min(ys) < 0):
        return None
    return ys


def batch_learner(
    trainer: Trainer, names: Sequence[str] | None
) -> Callable[[list[dict[str, float]], list[Any]], None]:
    """Learn a list of examples `batch_reader` read, in order."""
    learn_one = trainer.learn_one  # type: ignore[attr-defined]
    river = _plain_river(trainer)
    if river is None or tuple(river.features) != tuple(names or ()):

        def learn_each(xs: list[dict[str, float]], ys: list[Any]) -> None:
            for x, y in zip(xs, ys, strict=True):
                learn_one(x, y)

        return learn_each
    model_learn = river.model.learn_one  # online, the model object is never replaced

    def learn_river(xs: list[dict[str, float]], ys: list[Any]) -> None:
        for x, y in zip(xs, ys, strict=True):
            model_learn(x, y)

    return learn_river


# -- the example path -------------------------------------------------------------------


def learner(trainer: Trainer) -> Callable[[dict[str, Any], Any], None]:
    """`trainer.learn_one`; a plain `RiverTrainer` given a clean example (every feature a
    number, a 0/1 label or a finite number) hands it to River at once."""
    learn_one = trainer.learn_one  # type: ignore[attr-defined]
    river = _plain_river(trainer)
    if river is None:
        return learn_one
    classifies = river.task == "classification"
    numbers = _NUMBERS.__contains__

    def learn(x: dict[str, Any], label: Any) -> None:
        names = river.features
        clean = names and len(x) == len(names) and all(map(numbers, map(type, x.values())))
        if clean and type(label) in _LABELS:
            if classifies:
                y = _CLASSES.get(label)
            else:
                y = float(label) if math.isfinite(label) and river.task != "ranking" else None
            if y is not None:
                river.model.learn_one(x, y)
                return
        learn_one(x, label)

    return learn


def scorer(trainer: Trainer) -> Callable[[dict[str, Any]], float]:
    """One example's score before it is learned (progressive validation); a plain
    `RiverTrainer` with clean features asks River directly."""

    def generic(x: dict[str, Any]) -> float:
        return float(trainer.predict([x])[0])

    river = _plain_river(trainer)
    if river is None:
        return generic
    numbers = _NUMBERS.__contains__
    classifies = river.task == "classification"

    def score(x: dict[str, Any]) -> float:
        names = river.features
        if not (names and len(x) == len(names) and all(map(numbers, map(type, x.values())))):
            return generic(x)
        if not classifies:
            return float(river.model.predict_one(x))
        p = river.model.predict_proba_one(x)
        if True in p:
            return float(p[True])
        return 1.0 - float(p[False]) if False in p else 0.5

    return score


def extractor(
    names: Sequence[str] | None, model: Model
) -> Callable[[dict[str, Any]], tuple[dict[str, Any], Any]]:
    """``(features, label)`` of a decoded example, nested or flat.

    The features are a dict of exactly `names`, in that order (a KeyError names
    a missing one). An example holding just those, in that order, is used as it
    is rather than copied.

    >>> from loopline.models.declarations import Model
    >>> extract = extractor(("spend",), Model("buy", trainer=object, entity="member"))
    >>> extract({"spend": 2.0, "label": 1, "at": 7}), extract({"features": {"spend": 1}, "label": 0})
    (({'spend': 2.0}, 1), ({'spend': 1}, 0))
    """
    wanted = tuple(names or ())
    label_field = model.label
    times = tuple(dict.fromkeys((model.time, *TIME_FIELDS)))

    def extract(row: dict[str, Any]) -> tuple[dict[str, Any], Any]:
        label = row[label_field]
        nested = row.get("features")
        if nested.__class__ is dict:
            x = nested
        else:
            x = row
            del row[label_field]
            for name in times:
                row.pop(name, None)
        if tuple(x) != wanted:
            x = {name: x[name] for name in wanted}
        return x, label

    return extract


def chooser(app: App, model: Model) -> Callable[[Mapping[str, Any]], tuple[str, ...]]:
    """How the features of the first example are chosen when the model does not list them:
    a nested example's ``features``; else the entity's declared features it has; else
    every field with a number but the label and the time.

    >>> from loopline.models.declarations import Model
    >>> choose = chooser(App("shop"), Model("buy", trainer=object, entity="member"))
    >>> choose({"spend": 2.0, "member_id": "m1", "label": 1, "at": 7, "new": True})
    ('spend',)
    """
    declared = entity_features(app, model.entity)
    keys = {g.entity.key for g in (*app.features.aggregations, *app.features.tables)}
    skip = {model.label, model.time, "entity", *TIME_FIELDS, *keys}

    def choose(row: Mapping[str, Any]) -> tuple[str, ...]:
        nested = row.get("features")
        if isinstance(nested, Mapping):
            return tuple(nested)
        present = tuple(n for n in declared if n in row)
        if present:
            return present
        return tuple(
            n
            for n, v in row.items()
            if n not in skip and isinstance(v, int | float) and not isinstance(v, bool)
        )

    return choose
