"""The application of a running demo, by name, for commands started beside it.

A demo run's application is named ``demo-XXXXXXXX`` (printed when it starts)
and rebuilt from that name alone, so other commands can join the run::

    LOOPLINE_DEMO_APP=demo-1a2b3c4d loopline --log LOG dashboard loopline.demo.run_app:app
    LOOPLINE_DEMO_APP=demo-1a2b3c4d loopline --log LOG alerts loopline.demo.run_app:app

Reading `app` without ``LOOPLINE_DEMO_APP`` raises `AppError` saying so.

>>> os.environ["LOOPLINE_DEMO_APP"] = "demo-1a2b3c4d"
>>> from loopline.app import load_app
>>> load_app("loopline.demo.run_app:app").name
'demo-1a2b3c4d'
>>> del os.environ["LOOPLINE_DEMO_APP"]
"""

from __future__ import annotations

import os

from loopline.app import App, AppError
from loopline.demo.application import demo_app

__all__: list[str] = []  # `app` is built on use, by __getattr__


def __getattr__(name: str) -> App:
    # Built on use, not on import: importing the module (doctest collection) needs no run.
    if name != "app":
        raise AttributeError(name)
    run = os.environ.get("LOOPLINE_DEMO_APP", "")
    if not run:
        raise AppError(
            "set LOOPLINE_DEMO_APP to the demo run's application name (demo-XXXXXXXX, printed "
            "by `loopline demo` when it starts)"
        )
    return demo_app(run)
