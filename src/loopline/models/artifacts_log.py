"""Artifacts in the log: chunks of a compacted topic, found again by their write time.

An artifact is written as records of ``_loopline_model_artifacts`` keyed
``<model>/<artifact id>/<chunk index>``, all stamped with one write time that
the version records. Reading seeks to that time and scans forward until
every chunk is found, so loading a version reads about as many bytes as the
artifact has, however many other artifacts the topic holds; keeping chunks
out of ``_loopline_models`` lets a serving process read every version and
alias change without reading any artifact (docs/decisions/0011).

>>> import tempfile
>>> from loopline.log import open_log, TopicConfig
>>> log = open_log("embedded:" + tempfile.mkdtemp())
>>> log.create_topic("chunks", TopicConfig(compact=True))
>>> store = LogArtifacts(log, "chunks", chunk_size=4)
>>> chunks, written = store.write("churn", "a1", b"0123456789")
>>> chunks
3
>>> store.read("churn", "a1", chunks, written)
b'0123456789'
>>> store.close(); log.close()
"""

from __future__ import annotations

import threading
import time

from loopline.log import Log, Producer, Record
from loopline.models.artifacts import CHUNK_SIZE, ArtifactUnavailable, split
from loopline.stream.table import Table, TableTimeout

# A load seeks this much before the recorded write time, in case the broker stamped
# the chunks (LogAppendTime) with a clock behind the publisher's.
SEEK_SLACK_MS = 60_000


def chunk_key(name: str, artifact_id: str, index: int) -> bytes:
    return f"{name}/{artifact_id}/{index}".encode()


class LogArtifacts:
    """Writes artifacts to `topic` in chunks of `chunk_size` bytes, and reads them back."""

    def __init__(
        self,
        log: Log,
        topic: str,
        *,
        chunk_size: int = CHUNK_SIZE,
        producer: Producer | None = None,
    ) -> None:
        self.log = log
        self.topic = topic
        self.chunk_size = chunk_size
        self._own_producer = producer is None
        self._producer = producer or log.producer()
        self._reader: Table | None = None
        self._wanted: dict[bytes, int] = {}  # the chunks the read under way looks for
        self._found: dict[int, bytes] = {}
        self._lock = threading.Lock()

    def write(self, name: str, artifact_id: str, data: bytes) -> tuple[int, int]:
        """Write `data` durably; return (number of chunks, their write time in ms)."""
        written = time.time_ns() // 1_000_000
        pieces = split(data, self.chunk_size)
        for i, piece in enumerate(pieces):
            self._producer.send(
                self.topic, piece, chunk_key(name, artifact_id, i), timestamp=written
            )
        self._producer.flush()
        return len(pieces), written

    def read(self, name: str, artifact_id: str, chunks: int, written: int) -> bytes:
        """The artifact's bytes (unverified: the registry checks them), or `ArtifactUnavailable`."""
        found: dict[int, bytes] = {}
        with self._lock:
            if self._reader is None:
                self._reader = Table(
                    self.log, self.topic, self._collect, timeout=120, max_records=64
                )
            self._wanted = {chunk_key(name, artifact_id, i): i for i in range(chunks)}
            self._found = found
            try:
                self._reader.seek_to_time(written - SEEK_SLACK_MS)
                self._reader.refresh(until=lambda: len(found) == chunks)
                if len(found) < chunks:
                    # Timestamps were not the ones written (a broker's LogAppendTime): read it all.
                    self._reader.seek_to_beginning()
                    self._reader.refresh(until=lambda: len(found) == chunks)
            except TableTimeout as exc:
                raise ArtifactUnavailable(str(exc)) from None
        if len(found) < chunks:
            missing = sorted(set(range(chunks)) - set(found))
            raise ArtifactUnavailable(
                f"{len(missing)} of {chunks} artifact chunks are missing from {self.topic} "
                f"(first missing: {missing[0]}); publish the model again"
            )
        return b"".join(found[i] for i in range(chunks))

    def _collect(self, record: Record) -> None:
        i = self._wanted.get(record.key) if record.key is not None else None
        if i is not None and i not in self._found and record.value is not None:
            self._found[i] = record.value

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
        if self._own_producer:
            self._producer.close()
