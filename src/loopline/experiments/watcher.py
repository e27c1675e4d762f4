"""The experiment watcher: learns from outcomes and acts on running experiments.

`ExperimentWatcher` is a task on the stream runtime (``loopline experiments
run APP``). It reads the application's labelled examples (``<app>.labelled``,
each naming the experiment and arm of its decision) and its decisions
(``<app>.decisions``, for the latency each arm served with) in the
consumer group ``<app>.experiments``, and keeps, per (experiment, arm), the
sufficient statistics of its outcomes and decisions in changelog-backed
state (one unit per input partition,
`loopline.experiments.inputs`; `loopline.experiments.arm_state`), exactly once. At most once every
`interval` seconds, when new outcomes arrived, it looks at every running
experiment on the registry (`ExperimentRegistry`) and, in this order:

1. **guardrails**: a treatment that breaches one (`guardrails.breach`) rolls
   the experiment back, with the `Verdict` (metric, estimate, interval,
   units) on the record; serving sends every request to control again;
2. **winner**: a treatment whose primary metric beats control with the
   sequential test's confidence (`guardrails.winner`) is reported, and with
   ``auto_conclude`` the control arm's alias moves to it
   (`ModelRegistry.promote`) and the experiment is concluded;
3. **canary**: the next ramp step (`ramp.next_step`), guardrails holding;
4. **bandit**: Thompson sampling weights (`bandit.probability_best`) with the
   floor, written only when some arm moved by `min_change` (a point).

Every change is written with ``expected=revision``: if a person changed the
experiment meanwhile, the watcher's change is refused (`ExperimentConflict`),
it reads the experiment again at the next look and never undoes theirs.

**Partitions.** Statistics are kept per input partition. A member that owns
every partition acts on its own sums. With several members (Kafka), only the
member that owns partition 0 of the labelled examples acts: it adds the other partitions' committed
statistics, read from their changelog partitions, to its own; the others
only count (and say once why they do not act). See decision 0023.

>>> import tempfile
>>> from loopline.log import open_log
>>> from loopline.experiments.records import Arm, Experiment
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> registry = ExperimentRegistry(log)
>>> arms = (Arm("control", alias="production", weight=0.5, control=True), Arm("v2", version=2, weight=0.5))
>>> _ = registry.start(Experiment(name="doc", model="m", arms=arms, policy="bandit", floor=0.1))
>>> watcher = ExperimentWatcher(log, App("shop"), experiments=registry, interval=0)
>>> producer = log.producer()
>>> for i in range(400):
...     arm = "control" if i % 2 else "v2"
...     label = float(i % 3 == 0) if arm == "v2" else float(i % 9 == 0)
...     example = {"label": label, "experiment": "doc", "arm": arm}
...     producer.send("shop.labelled", msgspec.json.encode(example), b"m")
>>> producer.flush()
400
>>> stats = watcher.run_until_caught_up()
>>> stats.examples, stats.weights, registry.get("doc").weights
(400, 1, {'control': 0.1, 'v2': 0.9})
>>> watcher.close(); registry.close(); producer.close(); log.close()
"""

from __future__ import annotations

import collections
import logging
import time
import zlib
from dataclasses import dataclass, field

import msgspec

from loopline.app import App
from loopline.contracts.codecs import ContractViolation
from loopline.contracts.registry import SchemaRegistry
from loopline.experiments import metrics
from loopline.experiments.arm_state import (
    ArmsStateCodec,
    LabelledOutcome,
    Totals,
    totals,
)
from loopline.experiments.arm_stats import LABELLED_METRICS, ArmStats, decode_stats, estimate
from loopline.experiments.bandit import floored, moved, probability_best
from loopline.experiments.guardrails import WATCHED, breach, unwatched, winner
from loopline.experiments.inputs import ensure_topics
from loopline.experiments.ramp import next_step, step
from loopline.experiments.records import Experiment, ExperimentError, Verdict
from loopline.experiments.registry import ExperimentConflict, ExperimentRegistry
from loopline.log import Log, Record, TopicPartition
from loopline.models import promotion
from loopline.models.registry import ModelNotFound, ModelRegistry, ModelRegistryError
from loopline.outcomes.inputs import decoder
from loopline.serving.decisions import Decision, is_unknown_entity
from loopline.stream import names
from loopline.stream.runner import Runner
from loopline.stream.stage import Stage
from loopline.stream.state import PartitionedState
from loopline.stream.table import Table
from loopline.stream.task import Context, TaskStats

__all__ = ["ExperimentWatcher", "WatcherStats"]

logger = logging.getLogger(__name__)


@dataclass
class WatcherStats(TaskStats):
    """What an `ExperimentWatcher` did since it started.

    `examples` counts labelled examples of an experiment, `outside` those of
    none, `decisions` decisions of an experiment, `unreadable` decisions it
    could not read (skipped: the joiner dead-letters them); `changes` holds
    every experiment revision the watcher wrote.
    """

    examples: int = 0
    decisions: int = 0
    unreadable: int = 0
    outside: int = 0
    looks: int = 0
    weights: int = 0
    steps: int = 0
    rollbacks: int = 0
    conclusions: int = 0
    conflicts: int = 0
    changes: list[Experiment] = field(default_factory=list)


class ExperimentWatcher(Stage[WatcherStats]):
    """Learns from `app`'s outcomes and acts on its experiments (see the module docstring).

    `contracts` (optional): a schema registry; the decisions topic is read with
    the contract it is bound to, and bound when the watcher creates it (a
    `LogRegistry`). `experiments` and `models` are the registries to act
    through (made on `log` when not given; a made one is closed with the
    watcher). `interval`: the least seconds between two looks at the
    experiments; `min_change`: the least move of a bandit weight worth writing.
    """

    name = "experiments"

    def __init__(
        self,
        log: Log,
        app: App,
        contracts: SchemaRegistry | None = None,
        *,
        experiments: ExperimentRegistry | None = None,
        models: ModelRegistry | None = None,
        instance: str = "0",
        commit_interval: float = 0.5,
        max_batch: int = 5_000,
        interval: float = 1.0,
        min_change: float = 0.01,
    ) -> None:
        self.log, self.app = log, app
        self.labelled = names.labelled(app.name)
        self.changelog = names.experiments_changelog(app.name)
        self.group = names.experiments_group(app.name)
        self.decisions = names.decisions(app.name)
        self.topics = (self.labelled, self.decisions)
        self.interval, self.min_change = interval, min_change
        self.stats = WatcherStats()
        labelled_partitions, decision_partitions = ensure_topics(log, app, contracts)
        # state unit of an input partition: the labelled partitions first, then the decisions'
        self._first = {self.labelled: 0, self.decisions: labelled_partitions}
        self.units = labelled_partitions + decision_partitions
        self._decode_decision, _ = decoder(contracts, self.decisions, Decision)
        self._own_experiments = experiments is None
        self.experiments = experiments or ExperimentRegistry(log)
        self._models = models
        self._own_models = models is None
        self.states = PartitionedState(
            log, ArmsStateCodec(), lambda n: TopicPartition(self.changelog, n)
        )
        self._others: Table | None = None  # the changelog, for partitions other members own
        self._remote: dict[int, dict[tuple[str, str], ArmStats]] = {}
        # outcomes counted since the last look; at the start, the restored state's
        # (a predecessor may have committed them and died before looking)
        self._pending = True
        self._owned: list[int] = []
        self._looked = time.monotonic()  # the first look too waits `interval`
        self._said: set[str] = set()  # what was logged once already
        try:
            self.runner = Runner(
                log,
                self,
                group=self.group,
                instance=instance,
                commit_interval=commit_interval,
                max_batch=max_batch,
            )
        except BaseException:  # e.g. the log is away: close what this made, then say so
            if self._own_experiments:
                self.experiments.close()
            raise

    # -- running --------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group (an open transaction is aborted) and release what it made."""
        super().close()
        if self._others is not None:
            self._others.close()
        if self._own_experiments:
            self.experiments.close()
        if self._own_models and self._models is not None:
            self._models.close()

    # -- counting -------------------------------------------------------------------------

    def process(self, records: list[Record], context: Context) -> None:
        states, stats = self.states, self.stats
        first = self._first
        states.restore({first[r.topic] + r.partition for r in records})
        counted: collections.Counter[tuple[str, str]] = collections.Counter()
        for record in records:
            if record.topic == self.decisions:
                self._decision(record, context)
                continue
            try:
                outcome = msgspec.json.decode(record.value or b"", type=LabelledOutcome)
            except (msgspec.DecodeError, msgspec.ValidationError) as exc:
                context.dead_letter(record, f"not a labelled example: {exc}")
                continue
            if not outcome.experiment or not outcome.arm:
                stats.outside += 1
                continue
            states.get(record.partition).add(outcome)  # a labelled partition is its unit
            states.changed(record.partition)
            counted[(outcome.experiment, outcome.arm)] += 1
        for (experiment, arm), n in counted.items():
            metrics.OUTCOMES.labels(self.app.name, experiment, arm).inc(n)
            stats.examples += n
            self._pending = True

    def _decision(self, record: Record, context: Context) -> None:
        try:
            decision = self._decode_decision(record.value)
        except ContractViolation as exc:
            # The outcome joiner dead-letters unreadable decisions: a second copy from here
            # would count each twice in <app>.decisions.dlq. Counted and said once instead.
            self.stats.unreadable += 1
            self._say_once(
                "unreadable",
                "%s: decision at %s[%d] offset %d is unreadable (%s); skipped (the outcome "
                "joiner sets such decisions aside on %s.dlq)",
                self.group,
                record.topic,
                record.partition,
                record.offset,
                exc,
                record.topic,
            )
            return
        # an unknown entity's refusal says nothing of the arm's version: not counted
        if decision.experiment and decision.arm and not is_unknown_entity(decision.error):
            unit = self._first[record.topic] + record.partition
            self.states.get(unit).add_decision(
                decision.experiment, decision.arm, decision.latency_ms, error=bool(decision.error)
            )
            self.states.changed(unit)
            self.stats.decisions += 1
            self._pending = True

    def checkpoint(self, context: Context) -> None:
        self.states.write(
            lambda topic, value, key, partition: context.send(
                topic, value, key, partition=partition
            )
        )

    def revoke(self, partitions: set[TopicPartition]) -> None:
        self.states.drop({self._first[tp.topic] + tp.partition for tp in partitions})

    def reset(self) -> None:
        self.states.clear()
        self._pending = True  # what is read again is looked at again

    def caught_up(self, context: Context) -> bool:
        """Nothing left to read, and the last outcomes were looked at."""
        return context.lag() == 0 and not self._pending

    # -- looking --------------------------------------------------------------------------

    def tick(self, context: Context, caught_up: bool) -> None:
        if time.monotonic() - self._looked < self.interval:
            return
        self._looked = time.monotonic()
        owned = sorted({self._first[tp.topic] + tp.partition for tp in context.owned})
        if not owned:
            return
        if owned != self._owned:  # partitions moved: look at what this member holds now
            self._owned, self._pending = owned, True
        if len(owned) < self.units:
            if 0 not in owned:
                self._pending = False  # the member owning labelled partition 0 looks at these
                self._say_once(
                    "not-leader",
                    "%s: this member does not own partition 0 of %s: it counts outcomes and "
                    "decisions, and the member owning that partition acts on the experiments",
                    self.group,
                    self.labelled,
                )
                return
            if self._read_others():
                self._pending = True  # other members counted outcomes
        if self._pending:
            self._pending = False
            self.look(self.totals(owned))

    def totals(self, owned: list[int]) -> Totals:
        """Every (experiment, arm)'s statistics: owned units' own, the others' committed."""
        self.states.restore(owned)
        parts = [self.states.get(p).arms for p in owned]
        if len(owned) < self.units:
            self._read_others()
            parts += [arms for p, arms in self._remote.items() if p not in owned]
        return totals(parts)

    def _read_others(self) -> int:
        """Read what the members of the other partitions committed since; how many entries."""
        if self._others is None:
            self._others = Table(self.log, self.changelog, self._apply_remote)
        return self._others.refresh()

    def _apply_remote(self, record: Record) -> None:
        arms = self._remote.setdefault(record.partition, {})
        key = (record.key or b"").decode().partition("\x00")
        if record.value is None:
            arms.pop((key[0], key[2]), None)
        else:
            arms[(key[0], key[2])] = decode_stats(record.value)

    def look(self, statistics: Totals) -> None:
        """Act on every running experiment that has outcomes in `statistics`."""
        self.stats.looks += 1
        self.experiments.refresh()
        for experiment in self.experiments.list():
            arms = statistics.get(experiment.name)
            if experiment.state != "running" or not arms:
                continue
            per_arm = {a.name: arms.get(a.name, ArmStats()) for a in experiment.arms}
            self._gauge(experiment, per_arm)
            try:
                self._act(experiment, per_arm)
            except ExperimentConflict as exc:
                self.stats.conflicts += 1
                metrics.CHANGES.labels(self.app.name, experiment.name, "conflict").inc()
                logger.info("%s: %s; looking again at the next outcomes", experiment.name, exc)
                self._pending = True
            except ExperimentError as exc:  # stopped or changed meanwhile: nothing to do
                logger.info("%s: %s", experiment.name, exc)
            except (ModelNotFound, ModelRegistryError) as exc:  # the winner cannot be promoted
                self._say_once(
                    f"promote-{experiment.name}",
                    "experiment %s has a winner, but its alias cannot move (%s): conclude it "
                    "by hand",
                    experiment.name,
                    exc,
                )

    def _act(self, e: Experiment, arms: dict[str, ArmStats]) -> None:
        if missing := unwatched(e):
            self._say_once(
                f"unwatched-{e.name}",
                "experiment %s declares %s, which the watcher does not compute (it computes "
                "%s): those are not watched",
                e.name,
                ", ".join(missing),
                ", ".join(WATCHED),
            )
        outcomes = sum(s.n for s in arms.values())
        if (verdict := breach(e, arms)) is not None:
            margin = next(g.margin for g in e.guardrails if g.metric == verdict.metric)
            reason = (
                f"guardrail {verdict.metric} breached by {verdict.arm}: {_interval(verdict)} "
                f"(margin {margin:g}); traffic back to {e.control.name}"
            )
            change = self.experiments.roll_back(
                e.name, reason=reason, verdict=verdict, expected=e.revision
            )
            self._write(change, "rollbacks")
            logger.warning("experiment %s rolled back: %s", e.name, reason)
            return
        if (verdict := winner(e, arms)) is not None:
            if e.auto_conclude:
                self._conclude(e, verdict)
                return
            self._say_once(
                f"winner-{e.name}",
                "experiment %s: %s is better on %s (%s); conclude it with "
                "`loopline experiments conclude %s`",
                e.name,
                verdict.arm,
                verdict.metric,
                _interval(verdict),
                e.name,
            )
        if e.policy == "canary" and (weights := next_step(e, outcomes)) is not None:
            at = step(e) + 2
            reason = (
                f"canary step {at}/{len(e.ramp)}: {e.treatments[0].name} to "
                f"{e.ramp[at - 1]:g} after {outcomes} outcomes, guardrails holding"
            )
            change = self.experiments.set_weights(
                e.name, weights, reason=reason, expected=e.revision
            )
            self._write(change, "steps")
        elif e.policy == "bandit" and e.primary in LABELLED_METRICS:
            seed = zlib.crc32(f"{e.salt}/{e.revision}/{outcomes}".encode())
            best = probability_best(arms, e.primary, seed=seed)
            weights = floored(best, e.floor)
            if moved(e.weights, weights, self.min_change):
                chances = ", ".join(f"{a} {p:.3f}" for a, p in best.items())
                reason = (
                    f"thompson sampling on {e.primary} after {outcomes} outcomes: "
                    f"P(best) {chances}; floor {e.floor:g}"
                )
                change = self.experiments.set_weights(
                    e.name, weights, reason=reason, expected=e.revision
                )
                self._write(change, "weights")

    def _conclude(self, e: Experiment, verdict: Verdict) -> None:
        """Move the control's alias to the winner, then conclude (both at least once)."""
        arm, control = e.arm(verdict.arm), e.control
        reason = f"{verdict.arm} is better on {verdict.metric}: {_interval(verdict)}"
        if control.alias is not None:
            models = self.models
            version = arm.version
            if version is None:
                held = models.alias(e.model, arm.alias or "")
                version = None if held is None else held.version
            if version is None:
                raise ExperimentError(
                    f"winner {arm.name!r} names alias {arm.alias!r}, which points at no version "
                    f"of model {e.model!r}: conclude by hand"
                )
            self.experiments.refresh()
            if (now := self.experiments.get(e.name)).revision != e.revision:
                raise ExperimentConflict(
                    f"experiment {e.name!r} changed ({now.reason!r}) before its alias moved"
                )
            why = f"experiment {e.name}: {reason}"  # a move refused here is not a conclusion
            promotion.promote(models, e.model, version, control.alias, reason=why, verify=False)
            reason += f"; {control.alias} -> v{version}"
        change = self.experiments.conclude(
            e.name, reason=reason, verdict=verdict, expected=e.revision
        )
        self._write(change, "conclusions")
        logger.warning("experiment %s concluded: %s", e.name, reason)

    @property
    def models(self) -> ModelRegistry:
        """The model registry (made on first use: only a conclusion needs it)."""
        if self._models is None:
            self._models = ModelRegistry(self.log)
        return self._models

    def _write(self, change: Experiment, counter: str) -> None:
        self.stats.changes.append(change)
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        metrics.CHANGES.labels(self.app.name, change.name, counter).inc()
        self._gauge(change, {})

    def _gauge(self, e: Experiment, arms: dict[str, ArmStats]) -> None:
        for arm in e.arms:
            metrics.WEIGHT.labels(self.app.name, e.name, arm.name).set(arm.weight)
            if arm.name in arms and e.primary in LABELLED_METRICS:
                value = estimate(arms[arm.name], e.primary)[0]
                metrics.PRIMARY.labels(self.app.name, e.name, arm.name).set(value)

    def _say_once(self, what: str, message: str, *args: object) -> None:
        if what not in self._said:
            self._said.add(what)
            logger.warning(message, *args)


def _interval(v: Verdict) -> str:
    units = "decisions" if v.metric == "p99_latency_ms" else "outcomes"
    return (
        f"difference {v.estimate:+.4g}, interval {v.low:+.4g} to {v.high:+.4g}, {v.units} {units}"
    )
