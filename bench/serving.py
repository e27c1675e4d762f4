"""Serving: `loopline serve` against a bare FastAPI endpoint around the same LightGBM model.

One run, one machine. An application with member and item features (5 each:
table values and windowed counts and sums, computed by the feature processor
from generated profiles, items, 30 days of orders and a day of views), a
LightGBM ranker over the 10 of them (100 trees of 31 leaves) and a scorer over
the member's 5, signed and published. Each server runs in a process of its
own as ``loopline serve`` runs it (uvicorn, one worker); the load comes from
another process, open loop: request n is due at start + n / rate whether or
not earlier ones were answered, and its latency counts from that instant, so
queueing shows ("sender lag" is how late the load process itself sent).
Figures:

- ``/v1/rank``, 50 candidates x 10 features, keep 10: p50/p99 under a light
  load, the throughput at saturation (8 clients, closed loop) and the highest
  rate whose p99 stays under 10 ms (doubling from 100/s, then bisecting; each
  step 500 requests or 10 s), with decision logging on (``loopline serve``
  itself) and off (the same service given `DiscardedDecisions`: only to price
  the logging), and the logging's cost (target: at most 10 % fewer requests/s);
  logging on is also run with ``--decision-writes queued`` (the answer does not
  wait for its decision's journal write): the price of the default, synced;
- ``/v1/predict`` (the member's 5 features) at 500 requests/s, logging on, synced
  and queued: p50/p99 (target: p99 <= 5 ms);
- the same ranking in a bare FastAPI endpoint (`serve_bare`: a pydantic body,
  the same model file, feature values already in memory, no logging): what a
  user would otherwise write, calling ``Booster.predict`` as loopline does
  (OpenMP's default threads) and with ``num_threads=1``; loopline's ratios;
- ``/v1/rank`` with a 3-arm experiment running (a split of three versions of the
  same size, each request routed by the hash of its entity) against the same
  service with none, in the same run: p99 at the light load, alternating
  between the two servers round by round (target: at most 0.3 ms more);
- hot swap: under a steady load, from ``registry.promote`` of a new version to
  the first decision made with it (the time in its UUIDv7 decision id), and
  the requests that failed meanwhile (target: under 1 s, none).

Servers, load generator and whatever else runs on the machine share its cores:
the first and last lines say how many there are and how much of them other
work took meanwhile. (Over 600 lines: the benchmark, its servers, run by
``--role``, and its load generator are one file, so that one command runs it.)

    python bench/serving.py                                  # embedded log, ~4 minutes
    bash scripts/kafka.sh start
    python bench/serving.py --log kafka://127.0.0.1:9092
    python bench/serving.py --small                          # smoke, ~1.5 minutes
    python bench/serving.py --only predict --predict-seconds 30  # /v1/predict alone
    python bench/serving.py --only experiment                # experiment vs none alone
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import multiprocessing
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel

import loopline
from loopline import App
from loopline.features import Aggregations, Entity, FeatureSet, Table, TableFeature
from loopline.features.aggregations import Count, Sum
from loopline.log import Log, Producer, open_log
from loopline.models.declarations import Model
from loopline.models.trainers import LightGBMTrainer

KEY = "a serving benchmark secret, 16+ bytes"
RUN_ENV = "LOOPLINE_BENCH_SERVING_RUN"  # tells `bench_app`, in the servers, its topics
CANDIDATES, K = 50, 10
P99_LIMIT = 10.0  # ms
MEMBER = ["age", "tenure_days", "premium", "orders_7d", "spend_30d"]
ITEM = ["price", "rating", "stock", "views_1h", "views_24h"]
MINUTE, DAY = 60_000, 86_400_000


@dataclass(frozen=True)
class Sizes:
    members: int
    items: int
    orders: int  # over the last 30 days
    views: int  # over the last 24 hours
    step_seconds: float  # shortest rate step
    samples: int  # fewest requests per rate step (up to 10 s)


FULL = Sizes(members=2_000, items=20_000, orders=20_000, views=100_000, step_seconds=3, samples=500)
SMALL = Sizes(members=200, items=2_000, orders=2_000, views=10_000, step_seconds=1, samples=100)


# -- the application ---------------------------------------------------------------------


def bench_app(run: str | None = None) -> App:
    """The benchmark's application; ``loopline serve serving:bench_app`` reads `RUN_ENV`."""
    run = run or os.environ[RUN_ENV]
    member, item = Entity("member", "member_id"), Entity("item", "item_id")
    prefix = f"bench-serving-{run}"
    member_table = [TableFeature(f, f, default=0) for f in MEMBER[:3]]
    item_table = [TableFeature(f, f, default=0.0) for f in ITEM[:3]]
    orders = [
        *Count.per_window("orders", windows=["7d"]),
        *Sum.per_window("spend", field="amount", windows=["30d"]),
    ]
    features = FeatureSet(
        tables=[
            Table(f"{prefix}-members", member, member_table),
            Table(f"{prefix}-items", item, item_table),
        ],
        aggregations=[
            Aggregations(f"{prefix}-orders", member, orders, time="at"),
            Aggregations(
                f"{prefix}-views", item, Count.per_window("views", windows=["1h", "24h"]), time="at"
            ),
        ],
    )
    models = [
        Model(f"ranker-{run}", trainer=LightGBMTrainer, entity="member", features=MEMBER + ITEM),
        Model(f"scorer-{run}", trainer=LightGBMTrainer, entity="member", features=MEMBER),
        # the ranker again, under a 3-arm experiment (its own name: experiments are per model)
        Model(f"tried-{run}", trainer=LightGBMTrainer, entity="member", features=MEMBER + ITEM),
    ]
    return App(prefix, features=features, models=models)


def _send(
    producer: Producer, topic: str, key: str, ids: list[str], columns: dict[str, np.ndarray]
) -> None:
    rows = zip(*(c.tolist() for c in columns.values()), strict=True)
    values = [
        json.dumps({key: i, **dict(zip(columns, row, strict=True))}).encode()
        for i, row in zip(ids, rows, strict=True)
    ]
    stamps = columns["at"].tolist() if "at" in columns else None
    producer.send_batch(topic, values, [i.encode() for i in ids], stamps)


def produce_sources(log: Log, app: App, sizes: Sizes, rng: np.random.Generator) -> None:
    """Profiles, items, 30 days of orders and 24 hours of views (of Zipf-popular items)."""
    members, items = (t.source for t in app.features.tables)
    orders, views = (a.source for a in app.features.aggregations)
    for topic in (members, items, orders, views):
        log.create_topic(topic)
    producer = log.producer()
    m, n = sizes.members, sizes.items
    people = {
        "age": rng.integers(18, 80, m),
        "tenure_days": rng.integers(0, 3000, m),
        "premium": (rng.random(m) < 0.2).astype(int),
    }
    _send(producer, members, "member_id", [f"m-{i}" for i in range(m)], people)
    things = {
        "price": np.round(rng.lognormal(3.0, 1.0, n), 2),
        "rating": np.round(rng.uniform(1, 5, n), 1),
        "stock": rng.integers(0, 500, n),
    }
    _send(producer, items, "item_id", [f"i-{i}" for i in range(n)], things)
    now = int(time.time() * 1000)
    for topic, key, total, span, who in (
        (orders, "member_id", sizes.orders, 30 * DAY, rng.integers(0, m, sizes.orders)),
        (views, "item_id", sizes.views, DAY, (rng.zipf(1.3, sizes.views) - 1) % n),
    ):
        at = np.sort(rng.integers(now - span + MINUTE, now - MINUTE, total))
        ids = [f"{key[0]}-{w}" for w in who.tolist()]
        _send(producer, topic, key, ids, {"at": at, "amount": np.round(rng.gamma(2, 25, total), 2)})
    producer.flush()
    producer.close()


def training_rows(log: Log, app: App, sizes: Sizes, rng: np.random.Generator) -> np.ndarray:
    """Feature vectors of 5,000 random (member, item) pairs, as the online store serves them."""
    from loopline.features.store import FeatureStore

    members = rng.integers(0, sizes.members, 5_000).tolist()
    items = rng.integers(0, sizes.items, 5_000).tolist()
    pairs = [{"member": f"m-{m}", "item": f"i-{i}"} for m, i in zip(members, items, strict=True)]
    with FeatureStore(log, app) as store:
        store.catch_up(timeout=300)
        rows = store.vectors(pairs, MEMBER + ITEM)
    return np.array([[float(r[f] or 0.0) for f in MEMBER + ITEM] for r in rows])


def fit(X: np.ndarray, names: list[str], seed: int) -> LightGBMTrainer:
    """A LightGBM model of 100 trees of 31 leaves on a made-up label of the features."""
    rng = np.random.default_rng(seed)
    z = (X - X.mean(axis=0)) / (X.std(axis=0) + 1e-9)
    y = (z @ rng.normal(size=X.shape[1]) + rng.normal(size=len(X)) > 0).astype(int)
    trainer = LightGBMTrainer({"num_leaves": 31}, num_boost_round=100)
    trainer.fit(X, y, features=names)
    return trainer


def publish(registry: Any, name: str, trainer: LightGBMTrainer) -> int:
    data, format = trainer.save()
    features = [(f, "float") for f in trainer.features]
    return registry.publish(
        name, data, format=format, trainer="lightgbm", features=features
    ).version


# -- servers -----------------------------------------------------------------------------


class DiscardedDecisions:
    """Decision logging off: stands in for `DecisionLog` and drops every decision.

    Only this benchmark uses it, to price decision logging.
    """

    full = False  # the service's readiness asks
    stuck = None

    def submit(self, decision: object) -> None:
        pass

    async def kept(self) -> None:
        pass


def serve_discarding(url: str, model: str, port: int, state_dir: str) -> None:
    """What ``loopline serve`` runs (cli/serve.py), with `DiscardedDecisions` as decision log."""
    from loopline.contracts import LogRegistry
    from loopline.http.server import serve
    from loopline.log.collector import quiet_collector
    from loopline.serving.http import create_app
    from loopline.serving.service import PredictionService

    log = open_log(url)
    decisions: Any = DiscardedDecisions()
    service = PredictionService(
        log, bench_app(), LogRegistry(log), state_dir=state_dir, model=model, decisions=decisions
    )
    quiet_collector()  # as `loopline serve` does
    serve(create_app(service), "127.0.0.1", port)  # the server and limits of `loopline serve`


class BareRankRequest(BaseModel):
    entity: str
    candidates: list[str]
    k: int | None = None


def serve_bare(model_file: str, rows_file: str, threads: str, port: int) -> None:
    """The reference: a FastAPI rank endpoint around the LightGBM model file, nothing else.

    Feature values come from an array in memory (no look-up), nothing is
    logged; the endpoint is an ``async def``, run in the event loop as
    loopline's is (a plain ``def`` would run in FastAPI's thread pool, whose
    hop costs about as much as the answer). `threads` "default" calls ``booster.predict``
    as `LightGBMTrainer.predict` does: LightGBM then uses OpenMP's default, a
    thread per core (the model file's ``num_threads=1`` does not apply to
    predict); "1" passes ``num_threads=1``.
    """
    import lightgbm
    import uvicorn
    from fastapi import FastAPI

    booster = lightgbm.Booster(model_file=model_file)
    options = {} if threads == "default" else {"num_threads": int(threads)}
    rows = np.load(rows_file)
    offsets = itertools.count()
    app = FastAPI()

    @app.post("/v1/rank")
    async def rank(request: BareRankRequest) -> dict[str, Any]:
        n = len(request.candidates)
        start = next(offsets) * 7 % (len(rows) - n)
        scores = booster.predict(rows[start : start + n], **options)
        order = np.argsort(-scores, kind="stable")[: request.k]
        return {"items": [{"id": request.candidates[i], "score": float(scores[i])} for i in order]}

    @app.get("/readyz")
    def readyz() -> dict[str, bool]:
        return {"ready": True}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def predict_cost(model: bytes, rows: np.ndarray, calls: int = 300) -> dict[str, float]:
    """Microseconds per `Booster.predict` of `rows`, with OpenMP's default threads and one."""
    import lightgbm

    booster = lightgbm.Booster(model_str=model.decode())
    out = {}
    for label, options in (("default", {}), ("1", {"num_threads": 1})):
        for _ in range(20):
            booster.predict(rows, **options)
        start = time.perf_counter()
        for _ in range(calls):
            booster.predict(rows, **options)
        out[label] = (time.perf_counter() - start) / calls * 1e6
    return out


@dataclass
class Server:
    label: str
    process: subprocess.Popen
    port: int
    output: Path  # its stderr

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process so far."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(label: str, argv: list[str], env: dict[str, str], tmp: Path) -> Server:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    argv = [a.replace("{port}", str(port)) for a in argv]
    output = tmp / f"server-{port}.err"
    with output.open("wb") as err:
        process = subprocess.Popen([sys.executable, *argv], env=env, cwd=tmp, stderr=err)
    return Server(label, process, port, output)


def wait_ready(server: Server, timeout: float = 180.0) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            tail = server.output.read_text(errors="replace")[-3000:]
            raise SystemExit(f"the server of {server.label} exited:\n{tail}")
        with contextlib.suppress(httpx.HTTPError):
            url = f"http://127.0.0.1:{server.port}/readyz"
            if httpx.get(url, timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise SystemExit(f"the server of {server.label} was not ready in {timeout:g} s")


# -- load: an HTTP/1.1 keep-alive client in a process of its own ---------------------------


def _request(path: str, body: bytes) -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body


async def _response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            return int(head.split(b" ", 2)[1]), await reader.readexactly(int(line[15:]))
    raise ValueError("a response without Content-Length")


async def _open_loop(
    port: int, path: str, bodies: list[bytes], rate: float, seconds: float, answers: bool
) -> dict[str, Any]:
    """Request n sent at start + n / rate on a free connection (of 32); latency from then."""
    requests = [_request(path, b) for b in bodies]
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(32):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    total = max(1, round(rate * seconds))
    latency, lag = np.full(total, np.nan), np.zeros(total)
    found: list[tuple[int, int]] = []  # (decision time in ms, model version) of each answer
    failed = 0

    async def one(n: int, due: float) -> None:
        nonlocal failed
        reader, writer = await pool.get()
        try:
            writer.write(requests[n % len(requests)])
            status, body = await _response(reader)
        except (OSError, ValueError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            failed += 1
            writer.close()
            pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
            return
        pool.put_nowait((reader, writer))
        latency[n] = time.perf_counter() - due
        if status != 200:
            failed += 1
        elif answers:
            answer = json.loads(body)
            found.append((uuid.UUID(answer["decision_id"]).int >> 80, answer["version"]))

    tasks = []
    start = time.perf_counter() + 0.05
    for n in range(total):
        due = start + n / rate
        if (wait := due - time.perf_counter()) > 0:
            await asyncio.sleep(wait)
        lag[n] = time.perf_counter() - due
        tasks.append(asyncio.create_task(one(n, due)))
    await asyncio.gather(*tasks)
    while not pool.empty():
        pool.get_nowait()[1].close()
    done = latency[~np.isnan(latency)] * 1000
    p50, p99 = np.percentile(done, [50, 99]) if len(done) else (np.nan, np.nan)
    lag_p99 = float(np.percentile(lag, 99) * 1000)
    wall = time.time() - time.perf_counter()  # to place each request in wall-clock time
    out = dict(p50=p50, p99=p99, lag_p99=lag_p99, sent=total, failed=failed, answers=found)
    if answers:
        out["due"], out["latency"] = (start + np.arange(total) / rate + wall) * 1000, latency * 1000
    return out


async def _closed_loop(port: int, path: str, bodies: list[bytes], seconds: float) -> dict:
    """8 clients, each sending its next request when its last is answered."""
    requests = [_request(path, b) for b in bodies]
    answered = failed = 0
    deadline = time.perf_counter() + seconds

    async def client(i: int) -> None:
        nonlocal answered, failed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for n in itertools.count(i, 8):
            if time.perf_counter() >= deadline:
                break
            writer.write(requests[n % len(requests)])
            status, _ = await _response(reader)
            answered += status == 200
            failed += status != 200
        writer.close()

    start = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(8)))
    return {"rate": answered / (time.perf_counter() - start), "failed": failed}


def _load_worker(conn: Any) -> None:
    # select() sleeps to the microsecond; epoll rounds each timeout up to the millisecond,
    # which would send requests up to 1 ms late and count that as latency.
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    while (command := conn.recv()) is not None:
        run, kwargs = command
        conn.send(
            loop.run_until_complete((_open_loop if run == "open" else _closed_loop)(**kwargs))
        )
    loop.close()


class LoadGenerator:
    """The load process; one run at a time: `open` (at a rate) or `closed` (saturation)."""

    def __init__(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._process = ctx.Process(target=_load_worker, args=(child,), daemon=True)
        self._process.start()

    def start_open(
        self, port: int, path: str, bodies: list[bytes], rate: float, seconds: float, answers=False
    ) -> None:
        args = dict(port=port, path=path, bodies=bodies, rate=rate, seconds=seconds)
        self._conn.send(("open", {**args, "answers": answers}))

    def result(self) -> dict[str, Any]:
        return self._conn.recv()

    def open(self, *args: Any) -> dict[str, Any]:
        self.start_open(*args)
        return self.result()

    def closed(self, port: int, path: str, bodies: list[bytes], seconds: float) -> dict:
        self._conn.send(("closed", dict(port=port, path=path, bodies=bodies, seconds=seconds)))
        return self._conn.recv()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(None)
        self._process.join(timeout=10)


# -- measuring ---------------------------------------------------------------------------


def max_rate(
    load: LoadGenerator, server: Server, bodies: list[bytes], sizes: Sizes, bisections: int
) -> tuple[float, dict[str, Any] | None]:
    """The highest rate with p99 under 10 ms and no failure: doubling from 100/s, then bisecting."""
    passed: dict[float, dict[str, Any]] = {}

    def good(rate: float) -> bool:
        seconds = min(10.0, max(sizes.step_seconds, sizes.samples / rate))
        r = load.open(server.port, "/v1/rank", bodies, rate, seconds)
        ok = r["p99"] < P99_LIMIT and r["failed"] == 0
        print(
            f"  {server.label} at {rate:,.0f}/s: p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms, "
            f"sender lag p99 {r['lag_p99']:.2f} ms, {r['failed']} failed{'' if ok else ' (over)'}",
            flush=True,
        )
        if ok:
            passed[rate] = r
        time.sleep(0.5)  # let the server settle and its decision writer drain
        return ok

    best, over = 0.0, 100.0
    while over <= 20_000 and good(over):
        best, over = over, over * 2
    for _ in range(bisections):
        mid = round((best + over) / 2, -1)
        if over - best <= max(20.0, best * 0.08) or mid in (best, over):
            break
        best, over = (mid, over) if good(mid) else (best, mid)
    return best, passed.get(best)


def hot_swap(
    load: LoadGenerator, server: Server, bodies: list, registry: Any, model: str, version: int
) -> dict[str, Any]:
    """Promote `version` 3 s into 8 s of load at 100/s; when was its first decision made?"""
    load.start_open(server.port, "/v1/rank", bodies, 100.0, 8.0, True)
    time.sleep(3.0)
    promoted = time.time() * 1000
    registry.promote(model, version, "production")
    r = load.result()
    made = [ms for ms, v in r["answers"] if v == version]
    r["swap"] = (min(made) - promoted) / 1000 if made else float("nan")
    after = r["due"] >= promoted
    for name, part in (("before", ~after), ("after", after)):
        r[name] = np.nanpercentile(r["latency"][part], 99)
    return r


def start_experiment(log: Log, registry: Any, model: str, X: np.ndarray) -> Any:
    """Three versions of `model` (v1 at production) and a split of all three, a third each."""
    from loopline.experiments.records import Arm, Experiment
    from loopline.experiments.registry import ExperimentRegistry

    for seed in (1, 4, 5):
        version = publish(registry, model, fit(X, MEMBER + ITEM, seed=seed))
    registry.promote(model, version - 2, "production")
    experiments = ExperimentRegistry(log)
    arms = (
        Arm("control", alias="production", weight=1 / 3, control=True),
        Arm("b", version=version - 1, weight=1 / 3),
        Arm("c", version=version, weight=1 / 3),
    )
    experiments.start(Experiment(name=model, model=model, arms=arms), reason="bench/serving.py")
    return experiments


def experiment_cost(
    load: LoadGenerator, plain: Server, tried: Server, ranks: list, rate: float, seconds: float
) -> None:
    """p99 of /v1/rank with and without the experiment, alternating, 3 rounds of each."""
    import httpx

    p99s: dict[str, list[float]] = {"plain": [], "tried": []}
    for server in (plain, tried):
        load.open(server.port, "/v1/rank", ranks, 100, 2)  # warm up
    for _ in range(3):
        for key, server in (("plain", plain), ("tried", tried)):
            r = load.open(server.port, "/v1/rank", ranks, rate, seconds)
            p99s[key].append(r["p99"])
            if r["failed"]:
                print(f"note: {r['failed']} requests failed ({server.label})")
    for key, server in (("plain", plain), ("tried", tried)):
        runs = ", ".join(f"{p:.2f}" for p in p99s[key])
        print(
            f"{server.label} at {rate:,.0f}/s p99: {np.median(p99s[key]):.2f} ms "
            f"(median of 3 runs of {seconds:g} s: {runs})"
        )
    metrics = httpx.get(f"http://127.0.0.1:{tried.port}/metrics", timeout=10).text
    counted = re.findall(
        r'^loopline_serving_experiment_requests_total\{.*arm="([^"]+)".*\} (\S+)$', metrics, re.M
    )
    arms = [f"{arm} {float(n):,.0f}" for arm, n in counted]
    print(f"requests per arm on the experiment's server: {', '.join(arms) or 'none (not routed)'}")
    rise = float(np.median(p99s["tried"]) - np.median(p99s["plain"]))
    spread = max(max(p) - min(p) for p in p99s.values())
    verdict = met(rise <= 0.3) if spread <= 0.3 else f"inconclusive: runs vary by {spread:.2f} ms"
    print(
        f"3-arm experiment running vs none, /v1/rank p99 at {rate:,.0f}/s: {rise:+.2f} ms "
        f"(target <= +0.3 ms: {verdict})",
        flush=True,
    )


def routing_cost(experiment: Any, ranks: list[bytes]) -> None:
    """What routing adds to a request, in this process: the arm's look-up and its counter."""
    from loopline.experiments.router import ExperimentRoutes
    from loopline.serving.metrics import EXPERIMENT_REQUESTS

    routes = ExperimentRoutes(experiment)
    counters = {
        a.name: EXPERIMENT_REQUESTS.labels("bench", "m", "e", a.name) for a in experiment.arms
    }
    entities = [json.loads(body)["entity"] for body in ranks]
    timings = np.empty(100_000)
    clock = time.perf_counter_ns
    for n in range(len(timings)):
        began = clock()
        counters[routes.route(entities[n % len(entities)], {}).arm].inc()
        timings[n] = clock() - began
    p50, p99 = np.percentile(timings, [50, 99]) / 1000
    print(
        f"routing one request by a 3-arm split, in-process (hash, arm, counter; 100,000 calls): "
        f"p50 {p50:.1f} µs, p99 {p99:.1f} µs (target for the whole request: <= 300 µs)",
        flush=True,
    )


def met(ok: bool) -> str:
    return "met" if ok else "missed"


def report_ratios(results: dict[str, dict[str, Any]], rate: float) -> None:
    def ratio(a: float, b: float) -> str:
        return f"{a / b:.2f}" if a and b else "n/a (a rate of 0)"

    on, off = results["on"], results["off"]
    print(f"ratio logging on / off, max rate with p99 < 10 ms: {ratio(on['max'], off['max'])}")
    print(f"ratio logging on / off, saturation: {ratio(on['rps'], off['rps'])}")

    def fewer(cost: float) -> str:  # a negative cost is noise: logging on was the faster
        return f"{cost:.0%} fewer" if cost >= 0 else f"{-cost:.0%} more (noise)"

    costs = [1 - on["rps"] / off["rps"]]
    at_max = ""
    if on["max"] and off["max"]:
        costs.append(1 - on["max"] / off["max"])
        at_max = f", {fewer(costs[1])} at the p99 < 10 ms rate"
    print(
        f"decision logging cost: {fewer(costs[0])} requests/s at saturation{at_max} "
        f"(target <= 10%: {met(min(costs) <= 0.10)})"
    )
    queued = results["queued"]  # the answer does not wait for its decision's journal write
    name = "ratio decision writes synced (the default) / queued"
    print(f"{name}, max rate with p99 < 10 ms: {ratio(on['max'], queued['max'])}")
    print(f"{name}, saturation: {ratio(on['rps'], queued['rps'])}")
    print(f"{name}, p50 at {rate:,.0f}/s: {ratio(on['light']['p50'], queued['light']['p50'])}")
    for key, how in (("bare", "predict as loopline calls it"), ("bare1", "num_threads=1")):
        bare = results[key]
        name = f"ratio loopline (logging on) / bare FastAPI ({how})"
        print(f"{name}, max rate with p99 < 10 ms: {ratio(on['max'], bare['max'])}")
        print(f"{name}, saturation: {ratio(on['rps'], bare['rps'])}")
        print(f"{name}, p50 at {rate:,.0f}/s: {ratio(on['light']['p50'], bare['light']['p50'])}")


class MachineUse:
    """CPU used on the whole machine, and by this process and its children, since creation."""

    def __init__(self) -> None:
        self.start = (self._busy(), self._ours(), time.monotonic())

    @staticmethod
    def _busy() -> float:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(
            int, Path("/proc/stat").read_text().split()[1:9]
        )
        return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _ours() -> float:
        t = os.times()
        return t.user + t.system + t.children_user + t.children_system

    def cores(self) -> tuple[float, float]:
        """Cores used on average by other work, and by this benchmark (once its children ended)."""
        busy, ours, at = self._busy(), self._ours(), time.monotonic()
        seconds = at - self.start[2]
        ours -= self.start[1]
        return (busy - self.start[0] - ours) / seconds, ours / seconds


# -- main --------------------------------------------------------------------------------


def swap(
    load: LoadGenerator,
    servers: dict[str, Server],
    ranks: list[bytes],
    registry: Any,
    ranker: str,
    version: int,
) -> None:
    """The other servers stopped, the hot swap on the logging server, then that one stopped."""
    for key in ("off", "queued", "bare", "bare1"):
        servers[key].stop()
    r = hot_swap(load, servers["on"], ranks, registry, ranker, version)
    print(
        f"hot swap, promote to first decision with the new version: {r['swap']:.2f} s "
        f"(target < 1 s: {met(r['swap'] < 1)})"
    )
    print(
        f"hot swap failed requests: {r['failed']} of {r['sent']:,} at 100/s (target 0: "
        f"{met(r['failed'] == 0)}); p99 {r['before']:.2f} ms in the 3 s before the promote, "
        f"{r['after']:.2f} ms in the 5 s from it",
        flush=True,
    )
    servers["on"].stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--log", default="embedded", help="embedded (a temporary one), embedded:PATH or kafka://..."
    )
    parser.add_argument("--small", action="store_true", help="small data, short steps: a smoke run")
    parser.add_argument("--rate", type=float, default=50, help="the light load, requests/s")
    parser.add_argument(
        "--only",
        choices=["predict", "experiment"],
        help="run one part: 'predict' is /v1/predict at 500/s alone; 'experiment' is /v1/rank "
        "with a 3-arm experiment running against none",
    )
    parser.add_argument(
        "--predict-seconds",
        type=float,
        help="how long /v1/predict runs at 500/s (default: 2 steps)",
    )
    parser.add_argument("--role", help=argparse.SUPPRESS)  # a server process of this benchmark
    parser.add_argument("--argv", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "discarding":
        url, model, port, state_dir = args.argv
        return serve_discarding(url, model, int(port), state_dir)
    if args.role == "bare":
        model_file, rows_file, threads, port = args.argv
        return serve_bare(model_file, rows_file, threads, int(port))
    sizes = SMALL if args.small else FULL
    os.environ.setdefault("LOOPLINE_SIGNING_KEY", KEY)
    from loopline.features.processor import FeatureProcessor
    from loopline.models.registry import ModelRegistry

    tmp = Path(tempfile.mkdtemp(prefix="loopline-bench-serving-"))
    url = f"embedded:{tmp}/log" if args.log == "embedded" else args.log
    run = uuid.uuid4().hex[:8]
    app = bench_app(run)
    ranker, scorer, tried = (m.name for m in app.models)
    log = open_log(url)
    kind = url.split(":", 1)[0]
    print(
        f"serving: /v1/rank of {CANDIDATES} candidates x 10 features (5 member, 5 item: tables "
        f"and windowed counts/sums), keep {K}; {kind} log"
    )
    print(
        f"machine: {os.cpu_count()} cores, shared by each server, the load generator and other "
        f"work (load average {os.getloadavg()[0]:.2f} at start)",
        flush=True,
    )
    machine = MachineUse()
    rng = np.random.default_rng(7)
    started = time.perf_counter()
    produce_sources(log, app, sizes, rng)
    processor = FeatureProcessor(log, app)
    records = processor.run_until_caught_up().records
    processor.close()
    X = training_rows(log, app, sizes, rng)
    registry = ModelRegistry(log)
    first = fit(X, MEMBER + ITEM, seed=1)
    registry.promote(ranker, publish(registry, ranker, first), "production")
    registry.promote(scorer, publish(registry, scorer, fit(X[:, :5], MEMBER, seed=2)), "production")
    swap_version = publish(registry, ranker, fit(X, MEMBER + ITEM, seed=3))
    experiments = start_experiment(log, registry, tried, X) if args.only != "predict" else None
    (tmp / "ranker.txt").write_bytes(first.save()[0])
    np.save(tmp / "rows.npy", X[:2_000])
    print(
        f"setup: {sizes.members:,} members, {sizes.items:,} items, {records:,} source records, "
        f"features and models in {time.perf_counter() - started:.1f} s (not compared)"
    )
    cost = predict_cost(first.save()[0], X[:CANDIDATES])
    print(
        f"LightGBM Booster.predict of {CANDIDATES} rows in this process, OpenMP default threads "
        f"(as LightGBMTrainer.predict calls it): {cost['default']:,.0f} µs; num_threads=1: "
        f"{cost['1']:,.0f} µs",
        flush=True,
    )

    ranks = [
        json.dumps(
            {
                "entity": f"m-{rng.integers(sizes.members)}",
                "candidates": [
                    f"i-{j}" for j in rng.choice(sizes.items, CANDIDATES, replace=False)
                ],
                "k": K,
            }
        ).encode()
        for _ in range(500)
    ]
    predicts = [
        json.dumps({"entity": f"m-{i}"}).encode() for i in rng.integers(sizes.members, size=500)
    ]
    # The servers run this loopline (not another install of it) and import this file.
    here, src = Path(__file__).resolve().parent, Path(loopline.__file__).resolve().parents[1]
    env = {**os.environ, RUN_ENV: run, "PYTHONPATH": os.pathsep.join([str(here), str(src)])}
    this, files = str(Path(__file__).resolve()), [str(tmp / "ranker.txt"), str(tmp / "rows.npy")]

    def loopline_serve(model: str, state: str, writes: str = "synced") -> list[str]:
        argv = ["-m", "loopline", "--log", url, "serve", "serving:bench_app", "--model", model]
        return [
            *argv,
            "--port",
            "{port}",
            "--state-dir",
            str(tmp / state),
            "--decision-writes",
            writes,
        ]

    variants = {  # key: (label, server command)
        "on": ("loopline /v1/rank (logging on)", loopline_serve(ranker, "on")),
        "queued": (
            "loopline /v1/rank (logging on, --decision-writes queued)",
            loopline_serve(ranker, "queued", "queued"),
        ),
        "off": (
            "loopline /v1/rank (logging off)",
            [this, "--role", "discarding", "--argv", url, ranker, "{port}", str(tmp / "off")],
        ),
        "bare": (
            "bare FastAPI /v1/rank (predict as loopline calls it)",
            [this, "--role", "bare", "--argv", *files, "default", "{port}"],
        ),
        "bare1": (
            "bare FastAPI /v1/rank (predict num_threads=1)",
            [this, "--role", "bare", "--argv", *files, "1", "{port}"],
        ),
    }
    if args.only == "predict":
        variants = {}
    if args.only == "experiment":
        variants = {"on": variants["on"]}
    if experiments is not None:
        label = "loopline /v1/rank (logging on, 3-arm experiment running)"
        variants["tried"] = (label, loopline_serve(tried, "tried"))
    servers: dict[str, Server] = {}
    results: dict[str, dict[str, Any]] = {key: {} for key in variants}
    load = LoadGenerator()
    seconds = sizes.step_seconds
    light = min(10.0, max(2 * seconds, sizes.samples / args.rate))
    try:
        for key, (label, argv) in variants.items():
            servers[key] = start_server(label, argv, env, tmp)
        for server in servers.values():
            wait_ready(server)
        for key, server in servers.items():
            load.open(server.port, "/v1/rank", ranks, 100, seconds)  # warm up
            r = results[key]["light"] = load.open(server.port, "/v1/rank", ranks, args.rate, light)
            print(f"{server.label} at {args.rate:,.0f}/s p50: {r['p50']:.2f} ms")
            print(f"{server.label} at {args.rate:,.0f}/s p99: {r['p99']:.2f} ms", flush=True)
        if "tried" in servers:
            experiment_cost(load, servers["on"], servers["tried"], ranks, args.rate, light)
            routing_cost(experiments.get(tried), ranks)
            servers.pop("tried").stop()
            results.pop("tried")
        if args.only == "experiment":
            servers.pop("on").stop()
            results.clear()
        # Saturation twice, interleaved, so that the machine's drifting load hits each alike.
        for key, server in [*servers.items(), *servers.items()]:
            cpu = server.cpu_seconds()
            r = load.closed(server.port, "/v1/rank", ranks, seconds)
            results[key].setdefault("rates", []).append(r["rate"])
            used = (server.cpu_seconds() - cpu) / (r["rate"] * seconds) * 1000
            results[key].setdefault("cpu", []).append(used)
            if r["failed"]:
                print(f"note: {r['failed']} requests failed at saturation ({server.label})")
        for key, result in results.items():
            rates = result["rates"]
            result["rps"] = float(np.mean(rates))
            print(
                f"{servers[key].label} at saturation (8 clients): {result['rps']:,.0f} requests/s "
                f"(runs {', '.join(f'{r:,.0f}' for r in rates)}; server CPU "
                f"{np.mean(result['cpu']):.2f} ms/request)",
                flush=True,
            )
        for key, server in servers.items():
            best, r = max_rate(load, server, ranks, sizes, 1 if args.small else 3)
            results[key]["max"] = best
            if best:
                print(f"{server.label} max rate with p99 < 10 ms: {best:,.0f} requests/s")
            else:
                print(f"{server.label} max rate with p99 < 10 ms: none of the rates tried")
            if r is not None:
                print(f"{server.label} at {best:,.0f}/s p50: {r['p50']:.2f} ms")
                print(f"{server.label} at {best:,.0f}/s p99: {r['p99']:.2f} ms", flush=True)
        if servers:
            swap(load, servers, ranks, registry, ranker, swap_version)
        # The answer waits for its decision's journal write (synced, the default) or not
        # (queued): both in this run, one after the other.
        for writes in ("synced", "queued") if args.only != "experiment" else ():
            label = f"loopline /v1/predict (logging on, {writes})"
            scoring = servers[f"predict-{writes}"] = start_server(
                label, loopline_serve(scorer, f"predict-{writes}", writes), env, tmp
            )
            wait_ready(scoring)
            load.open(scoring.port, "/v1/predict", predicts, 100, seconds)  # warm up
            r = load.open(
                scoring.port, "/v1/predict", predicts, 500, args.predict_seconds or 2 * seconds
            )
            cpu = scoring.cpu_seconds()
            saturated = load.closed(scoring.port, "/v1/predict", predicts, 2 * seconds)["rate"]
            used = (scoring.cpu_seconds() - cpu) / (saturated * 2 * seconds) * 1000
            print(f"{scoring.label} at 500/s p50: {r['p50']:.2f} ms")
            print(
                f"{scoring.label} at 500/s p99: {r['p99']:.2f} ms (target <= 5 ms: "
                f"{met(r['p99'] <= 5)}; {r['failed']} failed, sender lag p99 {r['lag_p99']:.2f} ms)"
            )
            print(
                f"{scoring.label} at saturation (8 clients): {saturated:,.0f} requests/s "
                f"(server CPU {used:.2f} ms/request)",
                flush=True,
            )
            scoring.stop()
    finally:
        for server in servers.values():
            server.stop()
            errors = server.output.read_text(errors="replace").count("Traceback")
            if errors:
                print(f"note: the server of {server.label} logged {errors} tracebacks")
        load.close()
        if experiments is not None:
            experiments.stop(tried, reason="bench/serving.py is done")
            experiments.close()
        registry.close()
        if kind == "kafka":
            for topic in log.list_topics():
                if run in topic:
                    log.delete_topic(topic)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)
    if results:
        report_ratios(results, args.rate)
    other, ours = machine.cores()
    print(
        f"machine: other work used {other:.1f} of the {os.cpu_count()} cores on average during "
        f"the run, this benchmark {ours:.1f} (load average {os.getloadavg()[0]:.2f} at the end)"
    )


if __name__ == "__main__":
    main()
