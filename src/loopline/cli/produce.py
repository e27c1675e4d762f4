"""``loopline produce``: JSON lines on stdin become records of a topic.

Each non-blank line must be one JSON value; the record's value is the line's
own bytes, stripped of surrounding whitespace (so it is byte-for-byte what the
user wrote, and valid UTF-8 JSON). Lines are sent and flushed in batches of
`BATCH_LINES`, and whenever the input pauses (``tail -f ... | loopline
produce``), so no record waits for a full batch.
"""

from __future__ import annotations

import io
import json
import os
import select
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO

import click

from loopline.cli.errors import CLIError
from loopline.cli.interrupts import InterruptGuard
from loopline.cli.output import is_terminal, plural
from loopline.cli.settings import LogSettings
from loopline.contracts import SCHEMAS_TOPIC, ContractViolation, LogRegistry, record_type
from loopline.contracts.topics import codec_for
from loopline.log import Log, LogError, Producer

BATCH_LINES = 10_000
IDLE_SECONDS = 0.2
READ_CHUNK = 1 << 20
_BOM = b"\xef\xbb\xbf"


def read_lines(
    stream: BinaryIO, on_idle: Callable[[], None], guard: InterruptGuard
) -> Iterator[bytes]:
    """Lines of `stream`, calling `on_idle` each time the input pauses for `IDLE_SECONDS`.

    Ctrl-C (through `guard`) ends the reading while it waits for input.
    Streams without a selectable file descriptor (a test's BytesIO, Windows
    pipes) are read line by line without idle detection.
    """
    try:
        fd = stream.fileno()
        select.select([fd], [], [], 0)
    except (AttributeError, OSError, ValueError, io.UnsupportedOperation):
        for line in stream:
            guard.check()
            yield line
        return
    partial: list[bytes] = []
    while True:
        with guard.interruptible():
            ready = select.select([fd], [], [], IDLE_SECONDS)[0]
        if not ready:
            on_idle()
        with guard.interruptible():
            chunk = os.read(fd, READ_CHUNK)
        if not chunk:
            break
        if b"\n" not in chunk:
            partial.append(chunk)
            continue
        lines = chunk.split(b"\n")
        if partial:
            lines[0] = b"".join([*partial, lines[0]])
            partial = []
        if lines[-1]:
            partial.append(lines[-1])
        del lines[-1]
        yield from lines
    if partial:
        yield b"".join(partial)


class Batcher:
    """Records queued for one topic, sent and flushed together; counts what was delivered."""

    def __init__(self, producer: Producer, topic: str, partition: int | None) -> None:
        self.producer = producer
        self.topic = topic
        self.partition = partition
        self.values: list[bytes] = []
        self.keys: list[bytes | None] = []
        self.delivered = 0
        self.on_delivered: Callable[[int], None] = lambda n: None

    def add(self, value: bytes, key: bytes | None) -> None:
        self.values.append(value)
        self.keys.append(key)
        if len(self.values) >= BATCH_LINES:
            self.flush()

    def flush(self) -> None:
        """Send the queued records and wait until they are durable."""
        if not self.values:
            return
        try:
            if self.partition is None:
                # With --key every record has a key, without it none has.
                keyed = self.keys[0] is not None
                self.producer.send_batch(self.topic, self.values, self.keys if keyed else None)
            else:
                for value, key in zip(self.values, self.keys, strict=True):
                    self.producer.send(self.topic, value, key, partition=self.partition)
            self.producer.flush()
        except LogError as exc:
            raise CLIError(f"{exc}; {self._before()}") from None
        self.delivered += len(self.values)
        self.values, self.keys = [], []
        self.on_delivered(self.delivered)

    def _before(self) -> str:
        return f"produced the {plural(self.delivered, 'record')} before them to {self.topic!r}"

    def fail(self, problem: str) -> CLIError:
        """Flush every record queued so far and return the error to raise for `problem`."""
        self.flush()
        return CLIError(
            f"{problem}; produced the {plural(self.delivered, 'record')} before it to "
            f"{self.topic!r}, nothing after it"
        )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _parse(line: bytes, number: int) -> tuple[Any, str | None]:
    """The JSON value of `line`, or None and what is wrong with it."""
    try:
        return _DECODER.decode(line.decode("utf-8")), None
    except json.JSONDecodeError as exc:
        return None, f"line {number} is not valid JSON: {exc.msg} at column {exc.colno}"
    except UnicodeDecodeError:
        return None, f"line {number} is not valid JSON: it is not UTF-8 text"
    except ValueError as exc:
        return None, f"line {number} is not valid JSON: {exc}"
    except RecursionError:
        return None, f"line {number} is not valid JSON: it is nested too deeply"


def _key(obj: Any, field: str, number: int) -> tuple[bytes | None, str | None]:
    if not isinstance(obj, dict):
        return None, f"line {number} is not a JSON object, so it has no field {field!r} for --key"
    value = obj.get(field)
    if value is None:
        return None, f"line {number} has no field {field!r} for --key (or it is null)"
    return str(value).encode("utf-8"), None


def produce_lines(
    batcher: Batcher,
    lines: Iterable[bytes],
    key_field: str | None,
    contract: tuple[str, Callable[[Any], bytes]] | None = None,
) -> None:
    """Queue every line as a record; raise `CLIError` at the first bad line.

    With a `contract` (its label and its codec's encode), each line must follow
    it and the record's value is the contract's encoding of the line.
    """
    for number, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line:
            continue
        if number == 1 and line.startswith(_BOM):
            line = line[len(_BOM) :]
        obj, problem = _parse(line, number)
        key = None
        if problem is None and key_field is not None:
            key, problem = _key(obj, key_field, number)
        if problem is None and contract is not None:
            label, encode = contract
            try:
                line = encode(obj)
            except ContractViolation as exc:
                problem = f"line {number} breaks {label}: {exc}"
        if problem is not None:
            raise batcher.fail(problem)
        batcher.add(line, key)
    batcher.flush()


def _contract(log: Log, topic: str) -> tuple[str, Callable[[Any], bytes]] | None:
    """The label and encoder of the contract `topic` is bound to, if any."""
    if SCHEMAS_TOPIC not in log.list_topics():
        return None  # no contract was ever registered in this log
    registry = LogRegistry(log)
    try:
        binding = registry.binding(topic)
        if binding is None:
            return None
        version = registry.latest(binding.contract)
        codec = codec_for(record_type(version.schema), version, binding.encoding, registry)
        return f"contract {binding.contract!r} v{version.version}", codec.encode
    finally:
        registry.close()


@click.command(
    name="produce",
    epilog="""\b
Examples:
  loopline produce clicks < clicks.jsonl
  loopline produce clicks --key member_id < clicks.jsonl
  echo '{"member_id": 42, "item": 7}' | loopline produce clicks --key member_id
  tail -f app.jsonl | loopline produce events""",
)
@click.argument("topic")
@click.option(
    "--key",
    "key_field",
    metavar="FIELD",
    help="Key each record by this field of its JSON object (as text, e.g. 42 -> "
    "b'42'), so records of one key land in one partition, in order.",
)
@click.option(
    "--partition",
    type=int,
    metavar="N",
    help="Write every record to partition N instead of choosing by key.",
)
@click.pass_obj
def produce(
    settings: LogSettings, topic: str, key_field: str | None, partition: int | None
) -> None:
    """Write JSON lines from stdin to a topic, one record per line.

    Each record's value is the line as written (stripped of surrounding
    whitespace); blank lines are skipped. Records are sent in batches and
    flushed: when the command returns, every record is durable. At the first
    line that is not JSON (or lacks the --key field, or breaks the contract the
    topic is bound to) it stops with exit code 1, after delivering every line
    before it. On a topic bound to a contract, values are written in the
    contract's encoding.
    """
    stdin = click.get_binary_stream("stdin")
    with settings.open() as log:
        partitions = log.describe_topic(topic).config.partitions
        if partition is not None and not 0 <= partition < partitions:
            raise CLIError(f"topic {topic!r} has partitions 0..{partitions - 1}, not {partition}")
        contract = _contract(log, topic)
        producer = log.producer()
        batcher = Batcher(producer, topic, partition)
        interrupted = False
        try:
            with InterruptGuard() as guard, progress(topic) as on_delivered:
                batcher.on_delivered = on_delivered
                try:
                    lines = read_lines(stdin, batcher.flush, guard)
                    produce_lines(batcher, lines, key_field, contract)
                except KeyboardInterrupt:
                    batcher.flush()  # what was read before Ctrl-C is delivered, not lost
                    interrupted = True
        except BaseException:
            with suppress(LogError):  # the first error is the one worth reporting
                producer.close()
            raise
        producer.close()
    click.echo(f"produced {plural(batcher.delivered, 'record')} to {topic}", err=True)
    if interrupted:
        click.get_current_context().exit(130)


@contextmanager
def progress(topic: str) -> Iterator[Callable[[int], None]]:
    """A live count of delivered records on stderr when it is a terminal; else nothing."""
    if not is_terminal("stderr"):
        yield lambda delivered: None
        return
    from rich.console import Console
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    columns = (
        SpinnerColumn(),
        TextColumn(f"producing to {topic}:"),
        TextColumn("{task.completed:,} records"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("produce", total=None)
        yield lambda delivered: bar.update(task, completed=delivered)
