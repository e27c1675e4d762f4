#!/usr/bin/env bash
# The tutorial (docs/tutorial.md) end to end, on an embedded log in the current directory:
# a CSV of views and clicks and an item table -> contracts -> ingest -> features -> a
# baseline model (v1) -> serve /v1/rank -> outcomes -> labelled examples -> retrain (v2)
# -> hot swap, ending with a rank answered by v2. Then the cold start: a rule as v1 of an
# empty log. Run it from a copy of examples/clicks:
#
#     cp -r examples/clicks /tmp/clicks && cd /tmp/clicks && ./run.sh
#
# PORT (default 8000) is where the service listens. CI runs this on every change
# (tests/examples/test_clicks.py).
set -euo pipefail
PORT=${PORT:-8000}
export LOOPLINE_LOG=embedded:./.loopline
export LOOPLINE_SIGNING_KEY=${LOOPLINE_SIGNING_KEY:-$(python -c 'import secrets; print(secrets.token_hex(32))')}
pids=()
trap 'for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait' EXIT

wait_for() {  # wait_for URL PATTERN: until the body of URL matches PATTERN (60 s at most)
    for _ in $(seq 300); do
        curl -s "$1" | grep -q "$2" && return 0
        sleep 0.2
    done
    echo "timed out waiting for $2 at $1" >&2
    return 1
}

echo "== data"
python generate.py --out data

echo "== contracts and topics"
loopline contracts register clicks.event --schema contracts/event.avsc
loopline contracts register clicks.item --schema contracts/item.avsc
loopline topics create events --contract clicks.event --encoding avro
loopline topics create items --contract clicks.item --encoding avro

echo "== ingest"
loopline ingest data/items.csv --topic items --key item_id --time-column at
loopline ingest data/events.csv --topic events --key user_id --time-column at

echo "== features"
loopline features list clicks:app
loopline features run clicks:app --until-caught-up
loopline features get clicks:app u1 --entity user
loopline features get clicks:app i1 --entity item
loopline dataset build clicks:app --spine data/views.csv --out views.parquet \
    --entity user=user_id --entity item=item_id

echo "== the baseline: v1"
loopline train clicks:app --model ranker --spine data/views.csv \
    --entity user=user_id --entity item=item_id --alias production
loopline models list

echo "== no history yet? a rule as v1 (a second log, empty but for the item table)"
COLD="--log embedded:./cold-start"
loopline $COLD contracts register clicks.event --schema contracts/event.avsc
loopline $COLD contracts register clicks.item --schema contracts/item.avsc
loopline $COLD topics create events --contract clicks.event --encoding avro
loopline $COLD topics create items --contract clicks.item --encoding avro
loopline $COLD ingest data/items.csv --topic items --key item_id --time-column at
LOOPLINE_LOG=embedded:./cold-start python heuristic.py
loopline $COLD features run clicks:app --until-caught-up
loopline $COLD serve clicks:app --port "$((PORT + 1))" --unknown-entities defaults \
    --state-dir .loopline-serve-cold & cold=$!; pids+=($cold)
wait_for "localhost:$((PORT + 1))/readyz" '"ready":true'
curl -s -d '{"entity": "new-user", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' \
    "localhost:$((PORT + 1))/v1/rank"
echo
kill $cold

echo "== serve"
loopline features run clicks:app & pids+=($!)
loopline serve clicks:app --port "$PORT" & pids+=($!)
wait_for "localhost:$PORT/readyz" '"ready":true'
curl -s -d '{"entity": "u1", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' "localhost:$PORT/v1/rank"
echo

echo "== outcomes -> labelled examples"
loopline outcomes run clicks:app & pids+=($!)
python simulate.py --url "http://127.0.0.1:$PORT" --requests 300 > outcomes.jsonl
loopline produce clicks.outcomes --key entity < outcomes.jsonl
sleep 6   # the attribution window (5 s) closes for the last decisions
wait_for_labelled() {
    for _ in $(seq 300); do
        [ "$(loopline topics describe clicks.labelled | tail -1 | cut -f4)" -ge 1500 ] && return 0
        sleep 0.2
    done
    return 1
}
wait_for_labelled
loopline consume clicks.labelled --from-beginning --max 1

echo "== retrain: v2, hot-swapped"
loopline train clicks:app --model ranker --labelled clicks.labelled --alias production
wait_for "localhost:$PORT/readyz" '"version":2'
curl -s -d '{"entity": "u1", "candidates": ["i1", "i2", "i3", "i4"], "k": 2}' \
    "localhost:$PORT/v1/rank" | tee answer.json
echo
python -c 'import json; a = json.load(open("answer.json")); assert a["version"] == 2, a'
python simulate.py --url "http://127.0.0.1:$PORT" --requests 300 > /dev/null
echo "== done: v2 answers"
