#!/usr/bin/env bash
# docs/tutorial.md end to end, as one script, on an embedded log in the current directory:
# a CSV of views and clicks and an item table -> contracts -> ingest -> features -> a
# baseline model (v1; and a rule as v1 of an empty log: the cold start) -> serve /v1/rank
# -> outcomes -> labelled examples -> retrain (v2) -> hot swap, ending with a rank that
# v2 answers. Run it from a copy of this directory:
#
#     cp -r examples/clicks /tmp/clicks && cd /tmp/clicks && ./run.sh
#
# PORT (default 8000) and PORT + 1 are where the two services listen. CI runs it on every
# change (tests/examples/test_clicks.py); the tutorial's own blocks are run too
# (tests/examples/test_docs_commands.py).
set -euo pipefail
PORT=${PORT:-8000}
COLD=$((PORT + 1))
export LOOPLINE_LOG=embedded:./.loopline
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait' EXIT

wait_for() {  # wait_for URL PATTERN: until the body at URL matches PATTERN (60 s at most)
    for _ in $(seq 300); do
        curl -s "$1" | grep -q "$2" && return 0
        sleep 0.2
    done
    echo "timed out after 60 s waiting for $2 at $1" >&2
    return 1
}

echo "== 1. the data"
python generate.py --out data

echo "== 2. contracts and topics"
loopline contracts register clicks.event --schema contracts/event.avsc
loopline contracts register clicks.item --schema contracts/item.avsc
loopline topics create events --contract clicks.event --encoding avro
loopline topics create items --contract clicks.item --encoding avro

echo "== 3. ingest"
loopline ingest data/items.csv --topic items --key item_id --time-column at
loopline ingest data/events.csv --topic events --key user_id --time-column at

echo "== 4. features: user, item, user x item"
loopline features list clicks:app
loopline features run clicks:app --until-caught-up
loopline features get clicks:app u1 --entity user
loopline features get clicks:app i1 --entity item
loopline dataset build clicks:app --spine data/views.csv --out views.parquet \
    --entity user=user_id --entity item=item_id

echo "== 5. the baseline: v1"
export LOOPLINE_SIGNING_KEY=${LOOPLINE_SIGNING_KEY:-$(openssl rand -hex 32)}
loopline train clicks:app --model ranker --spine data/views.csv \
    --entity user=user_id --entity item=item_id --alias production
loopline models list

echo "== 5b. no history yet: a rule as v1 of a log that holds only the item table"
loopline --log embedded:./cold-start contracts register clicks.event --schema contracts/event.avsc
loopline --log embedded:./cold-start contracts register clicks.item --schema contracts/item.avsc
loopline --log embedded:./cold-start topics create events --contract clicks.event --encoding avro
loopline --log embedded:./cold-start topics create items --contract clicks.item --encoding avro
loopline --log embedded:./cold-start ingest data/items.csv --topic items --key item_id --time-column at
LOOPLINE_LOG=embedded:./cold-start python heuristic.py
loopline --log embedded:./cold-start features run clicks:app --until-caught-up
loopline --log embedded:./cold-start models list
loopline --log embedded:./cold-start serve clicks:app --port "$COLD" --unknown-entities defaults \
    --state-dir .loopline-serve-cold & cold=$!
pids+=("$cold")
wait_for "localhost:$COLD/readyz" '"ready":true'
curl -s -d '{"entity": "new-user", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' \
    "localhost:$COLD/v1/rank"
echo
kill "$cold"

echo "== 6. serve /v1/rank"
loopline features run clicks:app & pids+=($!)
loopline serve clicks:app --port "$PORT" & pids+=($!)
wait_for "localhost:$PORT/readyz" '"ready":true'
curl -s -d '{"entity": "u1", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' \
    "localhost:$PORT/v1/rank"
echo
loopline consume clicks.decisions --from-beginning --max 1 > /dev/null

echo "== 7. outcomes and labelled examples"
loopline outcomes run clicks:app --until-caught-up  # creates clicks.outcomes, with its contract
python simulate.py --url "http://127.0.0.1:$PORT" --requests 300 > outcomes.jsonl
loopline produce clicks.outcomes --key entity < outcomes.jsonl
sleep 6  # the attribution window (5 s) of the last decisions closes
loopline outcomes run clicks:app --until-caught-up
loopline consume clicks.labelled --from-beginning --max 1

echo "== 8. retrain: v2, hot-swapped"
loopline train clicks:app --model ranker --labelled clicks.labelled --alias production
wait_for "localhost:$PORT/readyz" '"version":2'
curl -s -d '{"entity": "u1", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' \
    "localhost:$PORT/v1/rank" | tee answer.json
echo
python -c 'import json; a = json.load(open("answer.json")); assert a["version"] == 2, a'
loopline models history ranker --alias production
echo "== done: the rank was answered by v2, the retrained version"
