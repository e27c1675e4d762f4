"""A stage in a process of its own, for the harness to kill: ``python child.py KIND URL BASE APP INSTANCE``.

Prints ``started`` once its task exists and ``commit`` after each commit (each
published version, for the online trainer), so the harness can kill it at a
moment of its choosing.
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from loopline.log import open_log
from stream.stages import stage
from support import KAFKA_CONFIG


def main() -> None:
    kind, url, base, app, instance = sys.argv[1:]
    log = open_log(url, kafka_config=KAFKA_CONFIG) if url.startswith("kafka") else open_log(url)
    task = stage(kind, base).task(log, app, instance)
    print("started", flush=True)
    task.run(on_commit=lambda _: print("commit", flush=True))


if __name__ == "__main__":
    main()
