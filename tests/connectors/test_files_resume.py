"""Resuming a file ingest only where it is the same ingest (issue 13, item 4).

How far an ingest got is kept per topic *as created* (its id), file content
and ingest options: a topic deleted and created again gets every row again,
and so does an ingest with other options. On both backends.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from loopline.cli import cli
from loopline.connectors import IngestReport, ingest_file
from loopline.contracts import dlq_topic
from loopline.log import Log, TopicConfig, open_log
from support import consume_all


def write_clicks(path: Path, rows: int) -> Path:
    path.write_text("member_id,item\n" + "".join(f"m{i % 7},{i}\n" for i in range(rows)))
    return path


def count(log: Log, topic: str, expected: int) -> int:
    consumer = log.consumer(None, [topic], reset="earliest")
    try:
        records = consume_all(consumer, expected, timeout=20)
        records += consumer.poll(max_records=10_000, timeout=1.0)
        return len(records)
    finally:
        consumer.close()


def test_a_topic_created_again_gets_every_row_again(log, new_topic, tmp_path):
    topic = new_topic()
    path = write_clicks(tmp_path / "clicks.csv", 200)
    assert ingest_file(log, path, topic, key="member_id").produced == 200
    assert ingest_file(log, path, topic, key="member_id") == IngestReport(skipped=200)
    log.delete_topic(topic)
    log.create_topic(topic, TopicConfig())
    report = ingest_file(log, path, topic, key="member_id")
    assert report == IngestReport(read=200, produced=200)
    assert count(log, topic, 200) == 200


def test_other_options_or_restart_ingest_again(log, new_topic, tmp_path):
    topic = new_topic()
    path = write_clicks(tmp_path / "clicks.csv", 20)
    assert ingest_file(log, path, topic).produced == 20
    assert ingest_file(log, path, topic, key="member_id").produced == 20  # another ingest
    assert ingest_file(log, path, topic, key="member_id").skipped == 20
    assert ingest_file(log, path, topic, key="member_id", restart=True).produced == 20
    assert ingest_file(log, path, topic, key="member_id").skipped == 20
    assert count(log, topic, 60) == 60


# -- the CLI ------------------------------------------------------------------------------


def run(url: str, *args: str):
    return CliRunner().invoke(cli, ["--log", url, *args])


def test_a_mistyped_key_is_refused_before_anything_is_written_and_can_be_corrected(tmp_path):
    url = f"embedded:{tmp_path / 'log'}"
    assert run(url, "topics", "create", "clicks").exit_code == 0
    data = tmp_path / "clicks.jsonl"
    data.write_text("".join(json.dumps({"member_id": f"m{i}", "item": i}) + "\n" for i in range(5)))

    typo = run(url, "ingest", str(data), "--topic", "clicks", "--key", "membr_id")
    assert typo.exit_code != 0
    assert "'membr_id'" in typo.stderr and "member_id" in typo.stderr, typo.output
    log = open_log(url)
    assert count(log, "clicks", 0) == 0 and dlq_topic("clicks") not in log.list_topics()
    log.close()
    typo = run(url, "ingest", str(data), "--topic", "clicks", "--time-column", "when")
    assert typo.exit_code != 0 and "'when'" in typo.stderr

    fixed = run(url, "ingest", str(data), "--topic", "clicks", "--key", "member_id")
    assert fixed.exit_code == 0, fixed.output
    assert "produced 5 to clicks" in fixed.stdout


def test_nothing_produced_exits_non_zero_and_says_why(tmp_path):
    url = f"embedded:{tmp_path / 'log'}"
    assert run(url, "topics", "create", "clicks").exit_code == 0
    data = write_clicks(tmp_path / "clicks.csv", 3)
    assert run(url, "ingest", str(data), "--topic", "clicks").exit_code == 0

    again = run(url, "ingest", str(data), "--topic", "clicks")
    assert again.exit_code == 1
    assert "3 rows already ingested earlier" in again.stdout
    assert "--restart" in again.stderr, again.output

    restarted = run(url, "ingest", str(data), "--topic", "clicks", "--restart")
    assert restarted.exit_code == 0, restarted.output
    assert "produced 3 to clicks" in restarted.stdout

    late = tmp_path / "late.csv"
    late.write_text("member_id,at\nm1,soon\nm2,later\n")
    dead = run(url, "ingest", str(late), "--topic", "clicks", "--time-column", "at")
    assert dead.exit_code == 1 and "dead-lettered 2 to clicks.dlq" in dead.stdout
    assert "loopline dlq inspect clicks" in dead.stderr, dead.output

    empty = tmp_path / "empty.csv"
    empty.write_text("member_id,item\n")
    nothing = run(url, "ingest", str(empty), "--topic", "clicks")
    assert nothing.exit_code == 1 and "no rows" in nothing.stderr, nothing.output
