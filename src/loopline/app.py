"""The user's application: what loopline runs, declared in a Python module.

An application is named ``module:attribute`` on the command line, the
convention of uvicorn and Celery (``loopline features run shop.app:app``);
``module`` alone means the attribute ``app``. The module is imported with the
current directory first on ``sys.path``, so a file next to you is found.

>>> from loopline.features import Aggregations, Entity, FeatureSet
>>> from loopline.features.aggregations import Count
>>> member = Entity("member", key="member_id")
>>> app = App("shop", features=FeatureSet([Aggregations("clicks", member, Count.per_window("clicks", windows=["1h"]))]))
>>> app.features.names()
['clicks_1h']
>>> app.topic_prefix
'shop'
"""

from __future__ import annotations

import importlib
import os
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

from loopline.features.declarations import FeatureSet
from loopline.models.declarations import Model
from loopline.monitor.alerts import Alert
from loopline.outcomes.declarations import Outcomes

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


class AppError(ValueError):
    """An application that cannot be found, imported or used (the message says what to do)."""


@dataclass(frozen=True)
class App:
    """A loopline application: its name and what it declares.

    `outcomes` says how outcomes become labels (`loopline.outcomes.Outcomes`).
    `alerts` are the monitor's rules (`loopline.monitor.Alert`); None means its
    defaults (`loopline.monitor.alerts.DEFAULT_ALERTS`), ``()`` none.
    `name` prefixes every topic and consumer group loopline makes for the
    application (changelogs, late events), so two applications on one log
    never share state. `spec` is the ``module:attribute`` it was loaded from
    (`load_app` sets it; None for an App built in code): a dataset manifest
    records it, so that ``loopline dataset rebuild`` can load the application
    again by itself. Library functions take an App; only the CLI and the demo
    load one.
    """

    name: str
    features: FeatureSet = field(default_factory=FeatureSet)
    models: Sequence[Model] = ()
    outcomes: Outcomes | None = None
    alerts: Sequence[Alert] | None = None
    spec: str | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _NAME.match(self.name):
            raise AppError(
                f"application name {self.name!r} is not usable in topic names: "
                "use letters, digits, '.', '_' and '-' (at most 100 characters)"
            )
        object.__setattr__(self, "models", tuple(self.models))
        if self.alerts is not None:
            object.__setattr__(self, "alerts", tuple(self.alerts))
            wrong = [a for a in self.alerts if not isinstance(a, Alert)]
            if wrong:
                raise AppError(
                    f"App.alerts must hold loopline.monitor.Alert rules, not {wrong[0]!r}: "
                    "write Alert('psi_high', 'psi', above=0.2)"
                )
        names = [m.name for m in self.models]
        if len(set(names)) != len(names):
            raise AppError(f"application {self.name!r} declares two models with one name: {names}")
        if not isinstance(self.features, FeatureSet):
            raise AppError(
                f"App.features must be a loopline.features.FeatureSet, not {type(self.features).__name__}"
            )

    def model(self, name: str) -> Model:
        """The model declared as `name` (AppError naming the declared ones otherwise)."""
        for model in self.models:
            if model.name == name:
                return model
        declared = ", ".join(m.name for m in self.models) or "none"
        raise AppError(
            f"application {self.name!r} declares no model {name!r}: declared are {declared}"
        )

    @property
    def topic_prefix(self) -> str:
        """What every topic loopline creates for this application starts with."""
        return self.name


def load_app(spec: str) -> App:
    """Import the application named by `spec` (``module:attribute`` or ``module``).

    The App returned remembers `spec` (`App.spec`). Raises `AppError` with what
    to do when the module or attribute is missing or is not an `App`.

    >>> import sys, types
    >>> sys.modules["shop_example"] = types.SimpleNamespace(app=App("shop"))
    >>> load_app("shop_example:app").spec
    'shop_example:app'
    >>> del sys.modules["shop_example"]
    >>> load_app("no such module")
    Traceback (most recent call last):
    ...
    loopline.app.AppError: 'no such module' does not name an application: write module:attribute, for example shop.features:app (a Python module and the App in it)
    """
    module_name, _, attribute = spec.partition(":")
    attribute = attribute or "app"
    if not module_name or not all(part.isidentifier() for part in module_name.split(".")):
        raise AppError(
            f"{spec!r} does not name an application: write module:attribute, "
            "for example shop.features:app (a Python module and the App in it)"
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            raise AppError(
                f"no module named {module_name!r} (looked in {cwd} and on sys.path): "
                "run loopline from the directory that holds it, or install it"
            ) from None
        raise
    target: object = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            found = sorted(n for n, v in vars(module).items() if isinstance(v, App))
            hint = f"; it defines {', '.join(found)}" if found else ""
            raise AppError(f"module {module_name!r} has no attribute {attribute!r}{hint}")
        target = getattr(target, part)
    if callable(target) and not isinstance(target, App):
        target = target()  # an application factory, as uvicorn's --factory
    if not isinstance(target, App):
        raise AppError(
            f"{spec} is a {type(target).__name__}, not a loopline.App: "
            "declare app = loopline.App('name', features=...)"
        )
    return target if target.spec == spec else replace(target, spec=spec)
