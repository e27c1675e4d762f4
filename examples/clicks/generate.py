"""Make the tutorial's data: a week of views and clicks, and the item table.

    python generate.py --out data

writes three CSV files into ``data/``:

- ``items.csv``: ``item_id, category, price, at`` (the item table; ``at`` is
  when the item was listed, so point-in-time reads see it from then on);
- ``events.csv``: ``user_id, item_id, category, event, at`` with ``event``
  ``view`` or ``click`` (a click follows its view by a few seconds);
- ``views.csv``: the training spine, one row per view: ``user_id, item_id,
  at, label`` (label 1 when the view was clicked).

The hidden truth the models have to find: each user has a favourite
category (most of their views are in it, and they click it far more
often), and some items are simply better than others. The times end now,
so the online features describe the present. ``--seed`` fixes everything
but the times.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
import time
from pathlib import Path

CATEGORIES = ["books", "games", "music", "garden", "kitchen", "sports"]
WEEK_MS = 7 * 24 * 3600 * 1000


def truth(seed: int, users: int, items: int) -> tuple[dict[str, str], dict[str, tuple[str, float]]]:
    """Each user's favourite category, and each item's (category, quality)."""
    rng = random.Random(seed)
    favourite = {f"u{u}": rng.choice(CATEGORIES) for u in range(users)}
    catalogue = {f"i{i}": (CATEGORIES[i % len(CATEGORIES)], rng.random()) for i in range(items)}
    return favourite, catalogue


def click_probability(favourite: str, category: str, quality: float) -> float:
    """How likely a user clicks an item they see (what the simulated users do too)."""
    logit = -2.6 + 2.2 * (favourite == category) + 2.0 * (quality - 0.5)
    return 1 / (1 + math.exp(-logit))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("data"))
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--views", type=int, default=6000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    favourite, catalogue = truth(args.seed, args.users, args.items)
    rng = random.Random(args.seed + 1)
    end = int(time.time() * 1000) - 60_000
    start = end - WEEK_MS
    by_category: dict[str, list[str]] = {c: [] for c in CATEGORIES}
    for item, (category, _) in catalogue.items():
        by_category[category].append(item)
    events, views = [], []
    for at in sorted(rng.randrange(start, end - 10_000) for _ in range(args.views)):
        user = f"u{rng.randrange(args.users)}"
        # half of a user's views are in their favourite category
        category = favourite[user] if rng.random() < 0.5 else rng.choice(CATEGORIES)
        item = rng.choice(by_category[category])
        clicked = rng.random() < click_probability(favourite[user], *catalogue[item])
        events.append((user, item, category, "view", at))
        if clicked:
            events.append((user, item, category, "click", at + rng.randrange(1_000, 8_000)))
        views.append((user, item, at, int(clicked)))
    args.out.mkdir(parents=True, exist_ok=True)
    _write(args.out / "items.csv", ["item_id", "category", "price", "at"], [
        (item, category, round(5 + 45 * rng.random(), 2), start - 3_600_000)
        for item, (category, _) in catalogue.items()
    ])  # fmt: skip
    events.sort(key=lambda e: e[-1])
    _write(args.out / "events.csv", ["user_id", "item_id", "category", "event", "at"], events)
    _write(args.out / "views.csv", ["user_id", "item_id", "at", "label"], views)
    clicks = sum(v[-1] for v in views)
    print(f"{len(catalogue)} items, {len(events)} events ({len(views)} views, {clicks} clicks)")


def _write(path: Path, header: list[str], rows: list[tuple]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
