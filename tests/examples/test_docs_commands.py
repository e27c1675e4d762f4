"""Every command in README.md and docs/tutorial.md runs, so the docs cannot drift from the code.

The fenced ``sh`` blocks are extracted (`tests.examples.markdown`) and run with bash,
stopping at the first command that fails, on the embedded log in a temporary directory:

- docs/tutorial.md is one session: its blocks in order, in a directory holding the
  repository's ``examples/``, as a reader who follows the page runs them;
- README.md's blocks each run in a directory of their own, given the files and topics the
  block assumes (`GIVEN`, named by the block's first command).

What the test changes in a command, and why: the ports the docs use (8000, 8001, 8080,
8081, 9108-9120) become free ports, as other processes may hold those; ``kafka://
127.0.0.1:9092`` becomes the broker the suite runs against (``$LOOPLINE_KAFKA_BOOTSTRAP``).
Long-running commands run in the background until the block ends (see
`tests.examples.markdown`). The commands not run are listed in `SKIPPED`, each with its
reason, and printed by the test that checks the list is still accurate.
"""

from __future__ import annotations

import os
import re
import secrets
import subprocess

import pytest
from tests.examples.markdown import Block, command_blocks, script
from tests.examples.shell import REPO, environment, free_ports

TUTORIAL = REPO / "docs" / "tutorial.md"
README = REPO / "README.md"
PORTS = ("8000", "8001", "8080", "8081", *(str(p) for p in range(9108, 9121)))

SKIPPED = {
    "pip install . && loopline demo": "installs the package into the running environment; "
    "`loopline demo` itself runs in tests/demo/test_demo.py",
    "scripts/test.sh": "the whole suite: it would run this test again",
    "scripts/test.sh -k parity": "the whole suite: it would run this test again",
    "loopline demo --break-feature same_industry --at 60": (
        "a whole demo run (minutes); tests/demo/test_demo.py runs --break-feature and --at "
        "with a short --duration"
    ),
    "loopline demo --dashboard-port 8050": (
        "a whole demo run (minutes); tests/dashboard runs `demo --dashboard-port 0` in a browser"
    ),
    "LOOPLINE_DEMO_APP=demo-1a2b3c4d loopline --log LOG dashboard loopline.demo.run_app:app "
    "--port 8051": (
        "joins a running demo by its name; tests/dashboard runs `dashboard "
        "loopline.demo.run_app:app` beside one"
    ),
    "scripts/kafka.sh start|stop|status": (
        "a usage line of three commands; stopping the broker would stop the suite's Kafka"
    ),
}


def _bare(command: str) -> str:
    """`command` without its trailing comment: how `SKIPPED` names it."""
    return re.sub(r"\s+#.*$", "", command).strip()


def _ports(text: str, first: int) -> str:
    mapping = {port: str(first + i) for i, port in enumerate(PORTS)}
    return re.sub(r"\b(" + "|".join(PORTS) + r")\b", lambda m: mapping[m.group(1)], text)


def _prepare(commands: list[str], kafka: str, first_port: int) -> list[str]:
    out = []
    for command in commands:
        if _bare(command) in SKIPPED:
            continue
        command = command.replace("kafka://127.0.0.1:9092", f"kafka://{kafka}")
        command = command.replace(README_DB, '"$(cat db.url)"')
        out.append(_ports(command, first_port))
    return out


def _run(commands: list[str], cwd, home, timeout: float) -> subprocess.CompletedProcess:
    env = environment(home)
    first = free_ports(len(PORTS))
    body = script(_prepare(commands, env["LOOPLINE_KAFKA_BOOTSTRAP"], first))
    (cwd / "commands.sh").write_text(body)
    return subprocess.run(
        ["bash", "commands.sh"], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def _check(result: subprocess.CompletedProcess, where: str) -> None:
    if result.returncode != 0:
        pytest.fail(
            f"a command of {where} failed (exit {result.returncode}); the last lines:\n"
            f"{result.stdout[-3000:]}\n--- stderr ---\n{result.stderr[-3000:]}",
            pytrace=False,
        )


def test_every_command_of_the_tutorial_runs_in_order(tmp_path):
    (tmp_path / "examples").symlink_to(REPO / "examples")
    commands = [c for block in command_blocks(TUTORIAL) for c in block.commands()]
    result = _run(commands, tmp_path, tmp_path, timeout=240)
    _check(result, "docs/tutorial.md")
    answers = [line for line in result.stdout.splitlines() if '"items":[' in line]
    assert '"model":"ranker","version":2,' in answers[-1], result.stdout[-2000:]


def test_commands_hide_in_no_unlabelled_block():
    from tests.examples.markdown import blocks

    for page in (README, TUTORIAL):
        for block in blocks(page):
            if block.language == "":
                assert not re.search(r"^\s*(loopline|curl|export) ", block.text, re.M), (
                    f"{page.name} line {block.line}: a block of commands without ```sh is "
                    "not run by this test; fence it as sh"
                )


def _readme_blocks() -> list[Block]:
    return command_blocks(README)


def _python_block(starts: str) -> str:
    from tests.examples.markdown import blocks

    found = [b.text for b in blocks(README) if b.language == "python" and b.text.startswith(starts)]
    assert len(found) == 1, f"README.md has {len(found)} python blocks starting {starts!r}"
    return found[0]


NOW = "$(($(date +%s) * 1000))"
SHOP_DATA = f"""
loopline topics create orders
loopline topics create profiles
now={NOW}
for i in 1 2 3 4 5 6; do
  echo "{{\\"member_id\\": \\"m-4$i\\", \\"amount\\": $i.5, \\"status\\": \\"paid\\", \\"at\\": $((now - i * 60000))}}"
done | loopline produce orders --key member_id
for i in 1 2 3 4 5 6; do
  echo "{{\\"member_id\\": \\"m-4$i\\", \\"country\\": \\"DE\\"}}"
done | loopline produce profiles --key member_id
python - <<'PY'
import time, pyarrow as pa, pyarrow.parquet as pq
now = int(time.time() * 1000)
ids = [f"m-4{{i % 6 + 1}}" for i in range(40)]
pq.write_table(pa.table({{"member_id": ids, "at": [now + 60_000 + i for i in range(40)],
                         "bought": [i % 2 for i in range(40)]}}), "spine.parquet")
PY
"""

# the tutorial's application and data (docs/tutorial.md, steps 1 to 3)
CLICKS_DATA = f"""
cp {REPO}/examples/clicks/*.py .
cp -r {REPO}/examples/clicks/contracts clicks-contracts
python generate.py --out data > /dev/null
loopline contracts register clicks.event --schema clicks-contracts/event.avsc
loopline contracts register clicks.item --schema clicks-contracts/item.avsc
loopline topics create events --contract clicks.event --encoding avro
loopline topics create items --contract clicks.item --encoding avro
loopline ingest data/items.csv --topic items --key item_id --time-column at
loopline ingest data/events.csv --topic events --key user_id --time-column at
"""

# an application named as README's Outcomes, Experiments and Monitoring sections name it:
# `pymk` (and `pymk.app:app`), shop's features, a model `accept`, outcomes as README declares
PYMK = (
    """
mkdir pymk
cat > pymk/app.py <<'PY'
{shop-with-model}
from loopline.outcomes import Outcomes
app = App("pymk", features=app.features, models=[Model("accept", trainer=LightGBMTrainer,
          entity="member", features=["orders_24h", "spent_24h"])],
          outcomes=Outcomes(window="1h", positive=["accepted"], negatives=True))
PY
echo 'from pymk.app import app' > pymk/__init__.py
loopline topics create pymk.labelled
now=$(($(date +%s) * 1000))
for i in $(seq 60); do
  echo "{\\"features\\": {\\"orders_24h\\": $((i % 3)), \\"spent_24h\\": $i.0}, \\"label\\": $((i % 2)), \\"at\\": $((now - 60000 + i * 1000))}"
done | loopline produce pymk.labelled
"""
    + SHOP_DATA
)

# README's Experiments: a package `shop` (`shop.app:app`, `--app shop`) with a model `ranker`
# of eight versions (the block compares 7 and 8 with `production`, here v6)
RANKER = """
mkdir shop
cat > shop/app.py <<'PY'
from loopline.app import App
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer
from loopline.outcomes import Outcomes
app = App("shop", models=[Model("ranker", trainer=LightGBMTrainer, entity="member",
          features=["orders_24h", "spent_24h"])],
          outcomes=Outcomes(window="1h", positive=["accepted"], negatives=True))
PY
echo 'from shop.app import app' > shop/__init__.py
loopline topics create shop.labelled
now=$(($(date +%s) * 1000))
for i in $(seq 60); do
  echo "{\\"features\\": {\\"orders_24h\\": $((i % 3)), \\"spent_24h\\": $i.0}, \\"label\\": $((i % 2)), \\"at\\": $((now - 60000 + i * 1000))}"
done | loopline produce shop.labelled
loopline train shop --model ranker --labelled shop.labelled --every 0.1s --runs 8
loopline models promote ranker 6 --alias production
"""

# README's change data capture names a database at db:5432; the block runs against a fresh
# database of the suite's PostgreSQL (scripts/postgres.sh), holding a table public.members
README_DB = "postgresql://app@db:5432/shop"
MEMBERS_DB = """
: "${LOOPLINE_POSTGRES_URL:?is not set: start PostgreSQL with scripts/postgres.sh start and export the URL it prints (scripts/test.sh does)}"
python - <<'PY'
import os, secrets, psycopg
base = os.environ["LOOPLINE_POSTGRES_URL"]
name = "shop_" + secrets.token_hex(4)
with psycopg.connect(base, autocommit=True) as conn:
    conn.execute(f"CREATE DATABASE {name}")
url = base.rsplit("/", 1)[0] + "/" + name
with psycopg.connect(url, autocommit=True) as conn:
    conn.execute("CREATE TABLE public.members (id text PRIMARY KEY, country text, spend float8)")
    conn.execute("INSERT INTO public.members VALUES ('m-1', 'DE', 3.5), ('m-2', 'FR', 1.0)")
open("db.url", "w").write(url)
PY
"""

# What each README block assumes exists, keyed by the block's first command.
GIVEN = {
    "loopline topics list": """
loopline topics create clicks
printf '{"member_id": "m-42", "item": 7}\\n{"member_id": "m-43", "item": 8}\\n' > clicks.jsonl
cat > order.avsc <<'JSON'
{"type": "record", "name": "Order", "fields": [
  {"name": "order_id", "type": "string"}, {"name": "amount", "type": "double"}]}
JSON
loopline contracts register orders --schema order.avsc
loopline topics create orders --contract orders --encoding avro
echo '{"order_id": "o-1", "amount": 3.5}' | loopline produce orders
""",
    "loopline contracts register clicks --schema contracts/clicks.avsc": """
mkdir contracts
cat > contracts/clicks.avsc <<'JSON'
{"type": "record", "name": "Click", "fields": [
  {"name": "member_id", "type": "string"}, {"name": "item", "type": "long"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}}]}
JSON
cat > contracts/clicks-v2.avsc <<'JSON'
{"type": "record", "name": "Click", "fields": [
  {"name": "member_id", "type": "string"}, {"name": "item", "type": "long"},
  {"name": "at", "type": {"type": "long", "logicalType": "timestamp-millis"}},
  {"name": "page", "type": "string", "default": ""}]}
JSON
printf 'member_id,item,at\\nm-42,7,2024-05-01T10:00:00Z\\nm-43,8,2024-05-01T10:01:00Z\\n' > clicks.csv
printf 'm-44,seven,2024-05-01T10:02:00Z\\n' >> clicks.csv  # a row the contract refuses: a dead letter
""",
    "loopline features list shop": "cat > shop.py <<'PY'\n"
    + "{shop}\nPY\n"
    + SHOP_DATA
    + CLICKS_DATA,
    "loopline serve shop --model buys --port 8000": "cat > shop.py <<'PY'\n{shop-with-model}\nPY\n"
    + SHOP_DATA
    + """
loopline train shop --model buys --spine spine.parquet --label bought --alias production
loopline features run shop --until-caught-up
loopline topics create requests
loopline topics create answers
""",
    "loopline experiments start ranker-v7 --model ranker --arm control=alias:production "
    "--arm v7=version:7 --weights 0.9,0.1 --guardrail mean_label:0.1": RANKER,
    "loopline cdc add members postgresql://app@db:5432/shop --table public.members": MEMBERS_DB,
    "loopline outcomes run pymk --metrics-port 9110": PYMK,
    "loopline outcomes run pymk.app:app &": PYMK,
    "loopline monitor pymk --metrics-port 9120 --webhook http://127.0.0.1:8080/alerts": PYMK,
    'loopline dashboard pymk --token "$(openssl rand -hex 16)"': PYMK,
    "export LOOPLINE_SIGNING_KEY=$(openssl rand -hex 32)": "cat > shop.py <<'PY'\n{shop-with-model}\nPY\n"
    + SHOP_DATA
    + """
loopline topics create labelled
now=$(($(date +%s) * 1000))
for i in $(seq 40); do
  echo "{\\"features\\": {\\"orders_24h\\": $((i % 3)), \\"country\\": \\"DE\\"}, \\"label\\": $((i % 2)), \\"at\\": $((now - 60000 + i * 1000))}"
done | loopline produce labelled
""",
}


def _shop_with_model() -> str:
    """README's shop.py with the models its Models section declares in it."""
    shop = _python_block("# shop.py")
    model = _python_block("from river import tree")
    head = model[: model.index("app = App(")]  # its imports and trainer functions
    declared = re.search(r"models=\[\n(.*?)\n\]\)", model, re.S).group(1)
    return head + shop.replace(
        "derived=[per_order]))", f"derived=[per_order]), models=[\n{declared}\n])"
    )


def _given(block: Block) -> str:
    first = _bare(block.commands()[0])
    return (
        GIVEN.get(first, "")
        .replace("{shop}", _python_block("# shop.py"))
        .replace("{shop-with-model}", _shop_with_model())
    )


@pytest.mark.parametrize("block", _readme_blocks(), ids=lambda b: f"README-line-{b.line}")
def test_every_command_of_the_readme_runs(block, tmp_path):
    commands = [c for c in block.commands() if _bare(c) not in SKIPPED]
    if not commands:
        reasons = [SKIPPED[_bare(c)] for c in block.commands()]
        pytest.skip(f"every command here is in SKIPPED: {reasons}")
    given = [line for line in _given(block).splitlines() if line.strip()]
    env = environment(tmp_path)
    env["LOOPLINE_SIGNING_KEY"] = secrets.token_hex(32)
    env["LOOPLINE_POSTGRES_URL"] = os.environ.get("LOOPLINE_POSTGRES_URL", "")
    first = free_ports(len(PORTS))
    body = script(_prepare(commands, env["LOOPLINE_KAFKA_BOOTSTRAP"], first))
    setup = "set -euo pipefail\n" + "\n".join(given) + "\n"
    (tmp_path / "given.sh").write_text(setup)
    (tmp_path / "commands.sh").write_text(body)
    given_run = subprocess.run(
        ["bash", "given.sh"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert given_run.returncode == 0, given_run.stdout + given_run.stderr
    result = subprocess.run(
        ["bash", "commands.sh"], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    _check(result, f"README.md's block at line {block.line}")
