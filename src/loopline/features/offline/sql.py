"""SQL spelling shared by the offline queries: identifiers, tiles, exact sums.

Sums are exact (equal to `math.fsum`, whatever order DuckDB's threads meet
the rows in) when a field's values fit a 127-bit fixed point: every value a
multiple of ``2**-k`` (`exact_scale`), e.g. decimals between 1e-9 and 1e12.
Such a field is summed as HUGEINT ``value * 2**k`` and rounded to a double
once, through its decimal text, which DuckDB rounds correctly (its direct
HUGEINT -> DOUBLE cast does not always).

>>> exact_scale(pa.array([0.5, 12.25, None, 3.0]), rows=1_000)
2
>>> exact_scale(pa.array([1e16, 1e-9]), rows=10) is None  # 136 bits apart
True
>>> floor_sql('"at"', 60_000)
'("at" - ((("at") % 60000) + 60000) % 60000)'
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from loopline.features.declarations import Window

HUGEINT_BITS = 126  # magnitude bits of a signed 128-bit sum, one kept in reserve


def quote(name: str) -> str:
    """`name` as a SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def floor_sql(expr: str, step: int) -> str:
    """`expr` rounded down to a multiple of `step` (DuckDB's ``%`` and ``//`` truncate)."""
    return f"({expr} - ((({expr}) % {step}) + {step}) % {step})"


def start_column(window: Window) -> str:
    """The column of the spine keys holding `window`'s first event time at ``at``."""
    return f"__start_{window.name}"


def start_sql(window: Window) -> str:
    """`Window.start` of the spine's ``at``."""
    assert window.tile is not None and window.length is not None
    return f"{floor_sql(quote('at'), window.tile)} - {window.length} + {window.tile}"


def power_sql(k: int) -> str:
    """``2.0**k`` as an exact DOUBLE literal."""
    return f"'{2.0**k!r}'::DOUBLE"


def exact_scale(values: pa.ChunkedArray | pa.Array, rows: int) -> int | None:
    """The `k` making every value times ``2**k`` an integer, with sums of up to `rows` of them
    inside a HUGEINT; None when there is none (values too far apart, inf, nan)."""
    data = values.cast(pa.float64()).drop_null().to_numpy(zero_copy_only=False)
    if not np.all(np.isfinite(data)):
        return None
    data = data[data != 0]
    if data.size == 0:
        return 0
    fraction, exponent = np.frexp(data)
    mantissa = (fraction * 2.0**53).astype(np.int64)
    _, trailing = np.frexp((mantissa & -mantissa).astype(np.float64))
    lowest = int((exponent - 53 + trailing - 1).min())  # every value is a multiple of 2**lowest
    highest = int(exponent.max())  # every |value| < 2**highest
    scale = -lowest
    if abs(scale) > 1000 or highest + scale + rows.bit_length() > HUGEINT_BITS:
        return None
    return scale


def exact_sum_sql(total: str, k: int) -> str:
    """The double nearest the HUGEINT `total` times ``2**-k``."""
    return f"({total})::VARCHAR::DOUBLE * {power_sql(-k)}"


def filtered(aggregate: str, *conditions: str | None) -> str:
    """`aggregate` with a FILTER of the given conditions (None: no condition)."""
    terms = [c for c in conditions if c]
    return f"{aggregate} FILTER (WHERE {' AND '.join(terms)})" if terms else aggregate
