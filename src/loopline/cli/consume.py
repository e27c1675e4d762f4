"""``loopline consume``: records of a topic as JSON lines on stdout.

The loop polls a batch, writes it, flushes stdout (so ``| jq`` sees records as
they come) and, in a consumer group, commits the offsets of exactly the records
written, so a later run of the same group resumes after them.
"""

from __future__ import annotations

import io
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import click
import msgspec

from loopline.cli.errors import CLIError
from loopline.cli.interrupts import InterruptGuard
from loopline.cli.output import plural, record_line
from loopline.cli.settings import LogSettings
from loopline.contracts import SCHEMAS_TOPIC, ContractViolation, LogRegistry, record_type
from loopline.contracts.topics import codec_for
from loopline.log import Consumer, Log, Record, TopicPartition

POLL_RECORDS = 500
POLL_SECONDS = 1.0


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that exiting after a closed pipe prints nothing more."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, io.UnsupportedOperation):
        pass


class RecordWriter:
    """Writes records of `consumer` to `out` as JSON lines, counting them in `written`.

    With a group, each written batch is committed before the next poll. The
    count survives an interruption, so Ctrl-C can still report it.
    """

    def __init__(
        self,
        consumer: Consumer,
        out: io.BufferedIOBase,
        *,
        meta: bool,
        guard: InterruptGuard | None = None,
        decode: Callable[[Record], bytes | None] | None = None,
    ) -> None:
        self.consumer = consumer
        self.out = out
        self.meta = meta
        self.decode = decode
        self.guard = guard or InterruptGuard()
        self.written = 0

    def run(self, max_records: int | None, timeout: float | None) -> None:
        """Write until `max_records` are written or none arrived for `timeout` seconds."""
        last_arrival = time.monotonic()
        while max_records is None or self.written < max_records:
            wait = POLL_SECONDS
            if timeout is not None:
                wait = max(0.0, min(wait, last_arrival + timeout - time.monotonic()))
            want = POLL_RECORDS
            if max_records is not None:
                want = min(want, max_records - self.written)
            with self.guard.interruptible():
                records = self.consumer.poll(max_records=want, timeout=wait)
            if not records:
                if timeout is not None and time.monotonic() - last_arrival >= timeout:
                    return
                continue
            self.write(records[:want])
            last_arrival = time.monotonic()

    def write(self, records: list[Record]) -> None:
        """Write one batch, flush it, and commit it when reading in a group."""
        decode = self.decode
        if decode is None:
            lines = [record_line(r, self.meta) for r in records]
        else:
            lines = [record_line(r, self.meta, decode(r)) for r in records]
        self.out.write(b"".join(lines))
        self.out.flush()
        if self.consumer.group is not None:
            # Exactly the records written: later ones of a partition win in the dict.
            self.consumer.commit(
                {TopicPartition(r.topic, r.partition): r.offset + 1 for r in records}
            )
        self.written += len(records)


@contextmanager
def contract_decoder(log: Log, topic: str) -> Iterator[Callable[[Record], bytes | None]]:
    """A function from a record of `topic` to its value decoded by the topic's contract, as JSON.

    A value the contract cannot read gives None (it is then written as it is)
    and a one-line warning on stderr naming the record and the reason.
    """
    registry = LogRegistry(log) if SCHEMAS_TOPIC in log.list_topics() else None
    try:
        binding = registry.binding(topic) if registry is not None else None
        if registry is None or binding is None:
            raise CLIError(
                f"--decode: topic {topic!r} is bound to no contract; bind one "
                f"(loopline topics create {topic} --contract NAME) or read without --decode"
            )
        version = registry.latest(binding.contract)
        codec = codec_for(record_type(version.schema), version, binding.encoding, registry)
        label = f"contract {binding.contract!r} v{version.version}"

        def decode(record: Record) -> bytes | None:
            if record.value is None:
                return None  # a tombstone is null either way
            try:
                return msgspec.json.encode(codec.decode(record.value))
            except ContractViolation as exc:
                where = f"{record.topic}[{record.partition}]@{record.offset}"
                click.echo(f"warning: {where} does not decode with {label}: {exc}", err=True)
                return None

        yield decode
    finally:
        if registry is not None:
            registry.close()


@click.command(
    name="consume",
    epilog="""\b
Examples:
  loopline consume clicks                           # new records, until Ctrl-C
  loopline consume clicks --from-beginning --max 10
  loopline consume clicks --group audit --timeout 5 # resumes where 'audit' stopped
  loopline consume clicks --from-beginning --meta --timeout 1 | jq .offset
  loopline consume orders --from-beginning --decode # Avro (or JSON) through its contract

\b
Output, one JSON line per record:
  the value, parsed when it is JSON, else as a string when it is UTF-8 text,
  else {"$base64": "..."}; null for a tombstone. With --meta:
  {"topic", "partition", "offset", "timestamp" (ms), "key", "value",
   "headers": [[name, value], ...]} with key and header values as strings
  (or the base64 marker).""",
)
@click.argument("topic")
@click.option(
    "--group",
    "-g",
    metavar="GROUP",
    help="Read as a member of this consumer group and commit after each batch, so "
    "the next run of the group resumes where this one stopped. Without it "
    "every partition is read and nothing is committed.",
)
@click.option(
    "--from-beginning",
    is_flag=True,
    help="Start at the earliest record (with --group: only when the group has no "
    "committed offset yet). Default: only records that arrive from now on.",
)
@click.option(
    "--max", "max_records", type=click.IntRange(min=0), metavar="N", help="Stop after N records."
)
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    metavar="SECONDS",
    help="Stop when no record arrived for this long. Default: run until Ctrl-C.",
)
@click.option(
    "--meta",
    is_flag=True,
    help="Write each record with its topic, partition, offset, timestamp, key and "
    "headers, not only its value.",
)
@click.option(
    "--decode",
    is_flag=True,
    help="Decode each value through the contract the topic is bound to (Avro or JSON) "
    "and write it as JSON; a value that does not decode is written as it is, with a "
    "warning on stderr.",
)
@click.pass_obj
def consume(
    settings: LogSettings,
    topic: str,
    group: str | None,
    from_beginning: bool,
    max_records: int | None,
    timeout: float | None,
    meta: bool,
    decode: bool,
) -> None:
    """Write records of a topic to stdout as JSON lines.

    Ctrl-C stops cleanly (exit code 130); every record written before it was
    committed when --group is given. A summary goes to stderr.
    """
    exit_code = 0
    with settings.open(read_only=True) as log, ExitStack() as parts:
        decoder = parts.enter_context(contract_decoder(log, topic)) if decode else None
        consumer = log.consumer(group, [topic], reset="earliest" if from_beginning else "latest")
        guard = InterruptGuard()
        out = click.get_binary_stream("stdout")
        writer = RecordWriter(consumer, out, meta=meta, guard=guard, decode=decoder)
        try:
            with guard:
                writer.run(max_records, timeout)
        except KeyboardInterrupt:
            exit_code = 130
        except BrokenPipeError:
            # The reader went away (`| head`): stop quietly, without committing what it missed.
            _silence_stdout()
        finally:
            consumer.close()
    click.echo(f"consumed {plural(writer.written, 'record')} from {topic}", err=True)
    click.get_current_context().exit(exit_code)
