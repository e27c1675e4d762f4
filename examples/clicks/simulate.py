"""Play the users: ask the service to rank items, click some, print the clicks.

    python simulate.py --url http://127.0.0.1:8000 --requests 300 > outcomes.jsonl

Each request ranks 20 random items for a random user and keeps 5; the user
clicks each returned item with the probability `generate.py` used for the
history (same ``--seed``), so a model that learned the truth earns more
clicks. Every click is printed as an outcome (contract ``loopline.outcome``):
``{"entity", "type": "click", "at", "decision_id", "item"}``, ready for
``loopline produce clicks.outcomes --key entity``. A summary goes to stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import urllib.request

from generate import click_probability, truth


def rank(url: str, user: str, candidates: list[str], k: int) -> dict:
    body = json.dumps({"entity": user, "candidates": candidates, "k": k}).encode()
    request = urllib.request.Request(f"{url}/v1/rank", body, {"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.load(response)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--items", type=int, default=60)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    favourite, catalogue = truth(args.seed, args.users, args.items)
    rng = random.Random()
    clicks = shown = 0
    versions: dict[int, int] = {}
    for _ in range(args.requests):
        user = f"u{rng.randrange(args.users)}"
        answer = rank(args.url, user, rng.sample(sorted(catalogue), 20), k=5)
        versions[answer["version"]] = versions.get(answer["version"], 0) + 1
        for returned in answer["items"]:
            shown += 1
            if rng.random() < click_probability(favourite[user], *catalogue[returned["id"]]):
                clicks += 1
                at = datetime.datetime.now(datetime.UTC).isoformat()
                print(json.dumps({"entity": user, "type": "click", "at": at,
                                  "decision_id": answer["decision_id"], "item": returned["id"]}))
    rate = clicks / shown if shown else 0.0
    print(f"{args.requests} ranks by versions {versions}: {clicks} clicks of {shown} shown "
          f"({rate:.1%})", file=sys.stderr)  # fmt: skip


if __name__ == "__main__":
    main()
