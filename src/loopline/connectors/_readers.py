"""Rows of data files, chunk by chunk: CSV, JSON lines and Parquet.

The readers behind `loopline.connectors.files`. Each turns a file into
chunks (`Chunk`) of row dicts, numbered so that a row keeps its number across
runs, and can start after the first `skip` rows (to resume an interrupted ingest).
CSV cells are read as strings so that the contract, not a guess, decides
their types; a CSV row with the wrong number of cells and a JSON line that
is not a JSON object (or is nested too deep to decode) arrive as `Malformed`
rows rather than stopping the read, and a CSV row of any width up to 256 MiB
is read. A file that cannot be read as its format at all is a ValueError
naming it.

Event times of Arrow formats are parsed a column at a time here (see
`loopline.connectors._times`); a cell that this pass cannot read is left as None
for `row_time` to try, row by row.

>>> import tempfile, pathlib
>>> path = pathlib.Path(tempfile.mkdtemp()) / "clicks.csv"
>>> _ = path.write_text("id,at\\n1,2024-05-01T12:00:00Z\\n2,2024-05-01T12:00:01Z\\n3\\n")
>>> [(c.rows, c.times) for c in read_chunks(path, "csv", chunk_rows=10, time_column="at")]
[([{'id': '1', 'at': '2024-05-01T12:00:00Z'}, {'id': '2', 'at': '2024-05-01T12:00:01Z'}, \
Malformed(reason='expected 2 columns, got 1', raw=b'3')], [1714564800000, 1714564801000, None])]
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import msgspec

from loopline.connectors._times import column_times

FORMATS = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
}
_CSV_BLOCK = 1 << 20
_CSV_MAX_BLOCK = 1 << 28  # rows up to about 256 MiB


class Malformed(NamedTuple):
    """A row that is not a record at all: a broken JSON line, a CSV row with the wrong cell count."""

    reason: str
    raw: bytes


@dataclass
class Chunk:
    """Consecutive rows of a file.

    `rows` holds a dict per row (a `Malformed` for a row that is not one);
    row ``i`` is number ``first + i`` (CSV and Parquet: the n-th data row) or,
    for JSON lines, line number ``lines[i]``. `raw` holds each JSON line as
    read; `times` the event time (ms) of each row where the column-wise pass
    could read it.
    """

    rows: list[Any]
    first: int
    lines: list[int] | None = None
    raw: list[bytes] | None = None
    times: list[int | None] | None = None
    malformed: bool = False

    def number(self, i: int) -> int:
        return self.lines[i] if self.lines is not None else self.first + i


def format_of(path: str | Path) -> str:
    """The format of `path` by its extension, or a ValueError naming the ones loopline reads."""
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot ingest {str(path)!r}: unknown file type {Path(path).suffix or '(none)'!r}; "
            "use .csv, .jsonl, .ndjson, .json (JSON lines) or .parquet"
        )
    return fmt


def columns_of(path: Path, fmt: str) -> list[str] | None:
    """Column names of a CSV or Parquet file (None for JSON lines, whose rows may differ)."""
    if fmt == "parquet":
        return list(_parquet_file(path).schema_arrow.names)
    if fmt == "csv":
        return _csv_header(path)
    return None


def count_rows(path: str | Path) -> int | None:
    """How many rows `path` holds, cheaply, for a progress bar.

    Exact for Parquet (from the file's metadata) and for JSON lines (non-blank
    lines); for CSV the number of lines after the header, which overcounts a
    file whose quoted cells span lines. None when it cannot tell.
    """
    path = Path(path)
    fmt = format_of(path)
    if fmt == "parquet":
        return _parquet_file(path).metadata.num_rows
    with path.open("rb") as f:
        if fmt == "jsonl":
            if path.suffix.lower() == ".json" and _is_json_array(path):
                return None
            return sum(1 for line in f if not line.isspace())
        lines, last = 0, b"\n"
        while block := f.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
        lines += last != b"\n"  # a last line without a newline
        return max(0, lines - 1)


def read_chunks(
    path: str | Path,
    fmt: str,
    *,
    chunk_rows: int,
    skip: int = 0,
    null_columns: Collection[str] = (),
    time_column: str | None = None,
) -> Iterator[Chunk]:
    """Chunks of at most `chunk_rows` rows of `path`, after its first `skip` rows.

    CSV cells of `null_columns` that are empty become None (an absent value).
    """
    path = Path(path)
    if fmt == "jsonl":
        yield from _jsonl_chunks(path, chunk_rows, skip)
    else:
        jumped, batches = (0, _csv_batches(path)) if fmt == "csv" else _parquet_batches(path, skip)
        yield from _arrow_chunks(batches, jumped, chunk_rows, skip, null_columns, time_column)


# -- Arrow formats: CSV and Parquet ----------------------------------------------------


def _csv_header(path: Path) -> list[str]:
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    try:
        reader = pa_csv.open_csv(
            path,
            read_options=pa_csv.ReadOptions(block_size=1 << 16),
            parse_options=pa_csv.ParseOptions(invalid_row_handler=lambda row: "skip"),
        )
    except pa.ArrowInvalid as exc:
        if "Empty CSV file" in str(exc):
            return []
        return _csv_header_by_python(path, exc)
    names = list(reader.schema.names)
    reader.close()
    return names


def _csv_header_by_python(path: Path, error: Exception) -> list[str]:
    """The header row, when pyarrow's first look (which also guesses types) failed."""
    with path.open(encoding="utf-8-sig", errors="replace", newline="") as f:
        header = next(csv.reader(f), None)
    if not header:
        raise ValueError(f"cannot read {str(path)!r} as CSV: {error}") from None
    return header


def _csv_batches(path: Path) -> Iterator[tuple[list[Malformed], Any]]:
    """The file's rows in order, as runs of good rows (a batch of text cells) and bad rows.

    The parser reads blocks of `_CSV_BLOCK` bytes and cannot parse a row that
    spans more than two: on such a row the file is read again with blocks
    four times as large (up to `_CSV_MAX_BLOCK`), passing over the rows
    already yielded, so one wide row costs a re-read, not the ingest.
    """
    import pyarrow as pa

    names = _csv_header(path)
    if not names:
        return
    done, block = 0, _CSV_BLOCK  # rows yielded so far; the block size of this pass
    while True:
        passed = 0  # rows of this pass, yielded by an earlier one
        try:
            for refused, batch in _csv_pass(path, names, block):
                if passed < done:  # an earlier pass yielded these rows: pass over them
                    refused, batch, passed = _after(refused, batch, done - passed, passed)
                    if not refused and batch is None:
                        continue
                yield refused, batch
                done += len(refused) + (batch.num_rows if batch is not None else 0)
                passed = done
            return
        except pa.ArrowInvalid as exc:
            if "straddl" not in str(exc) or block >= _CSV_MAX_BLOCK:
                raise ValueError(f"cannot read {str(path)!r} as CSV: {exc}") from None
            block *= 4


def _after(
    refused: list[Malformed], batch: Any, drop: int, passed: int
) -> tuple[list[Malformed], Any, int]:
    """The rows of one item after its first `drop`; and `passed` plus the rows dropped."""
    if refused:
        n = min(drop, len(refused))
        return refused[n:], batch, passed + n
    n = min(drop, batch.num_rows)
    rest = batch.slice(n) if n < batch.num_rows else None
    return [], rest, passed + n


def _csv_pass(path: Path, names: list[str], block: int) -> Iterator[tuple[list[Malformed], Any]]:
    """One read of the file with blocks of `block` bytes (ArrowInvalid on a wider row)."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    refused: list[tuple[int, Malformed]] = []  # (row number, row) of rows the parser refused

    def refuse(row: Any) -> str:
        reason = f"expected {row.expected_columns} columns, got {row.actual_columns}"
        # row.number counts the header row; a refused row is numbered like any other.
        refused.append((row.number - 1 if row.number else 0, Malformed(reason, row.text.encode())))
        return "skip"

    reader = pa_csv.open_csv(
        path,
        # Without threads the parser numbers the rows it refuses, so they keep their place.
        read_options=pa_csv.ReadOptions(block_size=block, use_threads=False),
        parse_options=pa_csv.ParseOptions(newlines_in_values=True, invalid_row_handler=refuse),
        # Bytes first, text after: a cell that is not UTF-8 costs its row, not the file.
        convert_options=pa_csv.ConvertOptions(
            column_types=dict.fromkeys(names, pa.binary()), strings_can_be_null=False
        ),
    )
    current = 1  # the number of the next row to yield
    try:
        while True:
            try:
                batch = reader.read_next_batch()
            except StopIteration:
                break
            i, n = 0, batch.num_rows
            while refused and refused[0][0] - current <= n - i:
                number, row = refused.pop(0)
                before = max(0, number - current)  # good rows of the batch ahead of this one
                if before:
                    yield from _text_runs(batch.slice(i, before))
                yield [row], None
                i, current = i + before, current + before + 1
            if i < n:
                yield from _text_runs(batch.slice(i))
                current += n - i
        if refused:
            yield [row for _, row in refused], None
    finally:
        reader.close()


def _text_runs(batch: Any) -> Iterator[tuple[list[Malformed], Any]]:
    """`batch` with its cells as text; a row with a cell that is not UTF-8 as `Malformed`."""
    import pyarrow as pa

    text = pa.schema([(name, pa.string()) for name in batch.schema.names])
    try:
        yield [], batch.cast(text)
        return
    except pa.ArrowInvalid:
        pass
    start = 0
    for i, row in enumerate(zip(*(c.to_pylist() for c in batch.columns), strict=True)):
        try:
            for cell in row:
                cell.decode()
        except UnicodeDecodeError as exc:
            if i > start:
                yield [], batch.slice(start, i - start).cast(text)
            yield [Malformed(f"not UTF-8 text: {exc}", b",".join(row))], None
            start = i + 1
    if start < batch.num_rows:
        yield [], batch.slice(start).cast(text)


def _parquet_batches(path: Path, skip: int) -> tuple[int, Iterator[tuple[list[Malformed], Any]]]:
    """Rows passed over unread (whole row groups before row `skip` + 1), and the batches after."""
    pf = _parquet_file(path)
    meta = pf.metadata
    group, jumped = 0, 0
    while group < meta.num_row_groups and jumped + meta.row_group(group).num_rows <= skip:
        jumped += meta.row_group(group).num_rows
        group += 1
    groups = range(group, meta.num_row_groups)
    return jumped, _parquet_read(path, pf.iter_batches(batch_size=65_536, row_groups=groups))


def _parquet_file(path: Path) -> Any:
    """`path` opened as Parquet, or a ValueError that says it is not one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(
            f"cannot read {str(path)!r} as Parquet ({exc}); is it a Parquet file? "
            "Name CSV files .csv and JSON lines .jsonl"
        ) from None


def _parquet_read(path: Path, batches: Iterator[Any]) -> Iterator[tuple[list[Malformed], Any]]:
    """`batches` of the file; a damaged row group is a ValueError, not a traceback."""
    import pyarrow as pa

    try:
        for batch in batches:
            yield [], batch
    except (pa.ArrowException, OSError) as exc:
        raise ValueError(
            f"cannot read {str(path)!r} as Parquet: the file is damaged: {exc}"
        ) from None


def _nulled(batch: Any, null_columns: Collection[str]) -> Any:
    """`batch` with the empty strings of `null_columns` replaced by nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc

    names = batch.schema.names
    targets = [i for i, name in enumerate(names) if name in null_columns]
    if not targets:
        return batch
    columns = list(batch.columns)
    null = pa.scalar(None, pa.string())
    for i in targets:
        columns[i] = pc.if_else(pc.equal(columns[i], ""), null, columns[i])
    return pa.RecordBatch.from_arrays(columns, names=names)


def _arrow_chunks(
    batches: Iterator[tuple[list[Malformed], Any]],
    seen: int,
    chunk_rows: int,
    skip: int,
    null_columns: Collection[str],
    time_column: str | None,
) -> Iterator[Chunk]:
    """Re-cut `batches` into chunks; `seen` rows of the file were passed before the first."""
    rows: list[Any] = []
    times: list[int | None] = []
    refusals = False  # whether any refused row was taken: only then look for them in chunks
    for refused, batch in batches:
        items: list[Any] = list(refused)
        n_batch = batch.num_rows if batch is not None else 0
        total = len(items) + n_batch
        if seen + total <= skip:
            seen += total
            continue
        drop = max(0, skip - seen)  # rows of this batch's items that an earlier run did
        seen += total
        dropped_refused = min(drop, len(items))
        items = items[dropped_refused:]
        refusals = refusals or bool(items)
        item_times: list[int | None] = [None] * len(items)
        if batch is not None:
            batch = batch.slice(drop - dropped_refused)
            if null_columns:
                batch = _nulled(batch, null_columns)
            items += batch.to_pylist()
            if time_column is not None and time_column in batch.schema.names:
                vector = column_times(batch.column(time_column))
                item_times += vector if vector is not None else [None] * batch.num_rows
            else:
                item_times += [None] * batch.num_rows
        rows += items
        times += item_times
        while len(rows) >= chunk_rows:
            yield _chunk(rows[:chunk_rows], times[:chunk_rows], seen - len(rows) + 1, refusals)
            del rows[:chunk_rows], times[:chunk_rows]
    if rows:
        yield _chunk(rows, times, seen - len(rows) + 1, refusals)


def _chunk(rows: list[Any], times: list[int | None], first: int, refusals: bool) -> Chunk:
    malformed = refusals and any(type(r) is Malformed for r in rows)
    return Chunk(rows, first, times=times, malformed=malformed)


# -- JSON lines --------------------------------------------------------------------------


def _is_json_array(path: Path) -> bool:
    with path.open("rb") as f:
        for line in f:
            if not line.isspace():
                return line.lstrip().startswith(b"[")
    return False


def _jsonl_chunks(path: Path, chunk_rows: int, skip: int) -> Iterator[Chunk]:
    if path.suffix.lower() == ".json" and _is_json_array(path):
        raise ValueError(
            f"{str(path)!r} holds a JSON array; loopline reads JSON lines (one object per line): "
            f"convert it with `jq -c '.[]' {path} > {path.with_suffix('.jsonl')}`"
        )
    decode = msgspec.json.decode
    with path.open("rb") as f:
        seen = 0
        rows: list[Any] = []
        lines: list[int] = []
        raw: list[bytes] = []
        malformed = False
        for number, line in enumerate(f, 1):
            if line.isspace():
                continue
            seen += 1
            if seen <= skip:
                continue
            line = line.rstrip(b"\r\n")
            if number == 1 and line.startswith(codecs.BOM_UTF8):
                line = line[len(codecs.BOM_UTF8) :]  # as some Windows tools write UTF-8
            try:
                row = decode(line)
            except msgspec.DecodeError as exc:
                row = Malformed(f"not valid JSON: {exc}", line)
                malformed = True
            except RecursionError:  # msgspec's own limit: the line is no record we can use
                row = Malformed("not valid JSON: nested too deep for a record", line)
                malformed = True
            else:
                if type(row) is not dict:
                    row = Malformed(f"expected a JSON object, got {type(row).__name__}", line)
                    malformed = True
            rows.append(row)
            lines.append(number)
            raw.append(line)
            if len(rows) == chunk_rows:
                yield Chunk(rows, seen - len(rows) + 1, lines, raw, malformed=malformed)
                rows, lines, raw, malformed = [], [], [], False
        if rows:
            yield Chunk(rows, seen - len(rows) + 1, lines, raw, malformed=malformed)
