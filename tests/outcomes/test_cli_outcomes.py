"""`loopline outcomes run APP` as a user runs it, on both backends."""

from __future__ import annotations

import json

from click.testing import CliRunner

from loopline.cli import cli
from outcomes.test_joiner import T0, outcome, produce, rank_decision
from support import consume_all, unique

APP = """
from loopline import App
from loopline.outcomes import Outcomes

app = App({name!r}, outcomes=Outcomes(window="10m", positive=["accepted"]))
bare = App({name!r})
"""


def test_loopline_outcomes_joins_until_caught_up(log, log_url, tmp_path, monkeypatch) -> None:
    name, module = unique("pymk"), unique("pymk_app").replace("-", "_")
    (tmp_path / f"{module}.py").write_text(APP.format(name=name))
    monkeypatch.syspath_prepend(str(tmp_path))
    for topic in ("decisions", "outcomes"):
        log.create_topic(f"{name}.{topic}")
    produce(log, f"{name}.decisions", [(rank_decision("d-1", "m-1", T0, ["m-7", "m-8"]), T0)])
    produce(log, f"{name}.outcomes", [(outcome("m-1", T0 + 1_000, item="m-7"), T0 + 1_000)])
    runner = CliRunner()
    result = runner.invoke(
        cli, ["--log", log_url, "outcomes", "run", f"{module}:app", "--until-caught-up"]
    )
    assert result.exit_code == 0, result.output
    assert "2 labelled examples (1 positive), 1 outcome joined" in result.output
    consumer = log.consumer(None, [f"{name}.labelled"], reset="earliest")
    labels = sorted(
        (e["item"], e["label"])
        for e in map(json.loads, (r.value for r in consume_all(consumer, 2)))
    )
    consumer.close()
    assert labels == [("m-7", 1.0), ("m-8", 0.0)]
    bare = runner.invoke(cli, ["--log", log_url, "outcomes", "run", f"{module}:bare"])
    assert bare.exit_code != 0 and "outcomes=Outcomes(" in bare.output
