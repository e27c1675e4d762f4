"""Exact fixed-point sums in numpy: 128-bit integers as int64 limbs, rounded once.

A field whose values are all multiples of ``2**-k`` (`sql.exact_scale`) is
summed exactly as the integers ``value * 2**k``. numpy has no 128-bit
integer, so each such integer is split into `Limbs`: signed int64 digits of
`width` bits, few enough to hold the field's largest value and narrow enough
that running sums over every record stay inside int64. Sums and differences
of limbs are exact; `Limbs.to_double` turns a sum into the double nearest to
it (ties to even) times ``2**-k``: the very double of rounding the exact sum
once, as `math.fsum` gives it.

>>> import math
>>> from loopline.features.offline.sql import exact_scale
>>> values = np.array([0.1, 0.2, 0.3, -0.6, 1e9, 1e-6])
>>> k = exact_scale(pa.array(values), rows=len(values))  # all multiples of 2**-k
>>> limbs = Limbs.of(values, k, rows=len(values))
>>> total = limbs.cumsum()[:, -1:]  # the running sum after the last value
>>> float(Limbs(total, limbs.width).to_double(k)[0]) == math.fsum(values)
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa  # noqa: F401 (the example)

_U64 = np.uint64
_SAFE_BITS = 61  # running sums stay below 2**61, so a difference plus a sum fits int64


@dataclass
class Limbs:
    """Integers ``sum(digits[j] * 2**(width * j))``, one per column of `digits` (int64)."""

    digits: np.ndarray  # (limbs, n) int64
    width: int

    @classmethod
    def of(cls, values: np.ndarray, k: int, rows: int) -> Limbs:
        """The integers ``values * 2**k`` (float64 values, each a multiple of ``2**-k``), in
        limbs whose running sums over up to `rows` values cannot overflow."""
        width = max(1, _SAFE_BITS - max(rows, 1).bit_length())
        fraction, exponent = np.frexp(values)
        mantissa = (fraction * 2.0**53).astype(np.int64)  # exact: |fraction| < 1
        magnitude = np.abs(mantissa).astype(_U64)
        shift = exponent.astype(np.int64) + (k - 53)  # value * 2**k = mantissa * 2**shift
        top = int((shift + 53).max()) if len(values) else 0  # |value * 2**k| < 2**top
        count = max(1, -(-top // width))
        negative = mantissa < 0
        mask = _U64((1 << width) - 1)
        digits = np.empty((count, len(values)), np.int64)
        for j in range(count):
            at = shift - width * j  # where the mantissa's bit 0 lands in digit j
            left = np.clip(at, 0, 63).astype(_U64)
            right = np.clip(-at, 0, 63).astype(_U64)
            part = np.where(at >= 0, magnitude << left, magnitude >> right)
            part[(at >= 64) | (at <= -64)] = 0
            digit = (part & mask).astype(np.int64)
            digits[j] = np.where(negative, -digit, digit)
        return cls(digits, width)

    def cumsum(self) -> np.ndarray:
        """Running sums with a leading zero: column i sums the first i integers."""
        out = np.zeros((len(self.digits), self.digits.shape[1] + 1), np.int64)
        for j, digit in enumerate(self.digits):
            np.cumsum(digit, out=out[j, 1:])
        return out

    def to_double(self, k: int) -> np.ndarray:
        """Each integer times ``2**-k``, rounded once to the nearest double (ties to even)."""
        digits = _carried(self.digits, self.width)
        if len(digits) == 1:  # int64 to double rounds once
            return digits[0].astype(np.float64) * 2.0**-k
        out, done = _split_sum(digits, self.width)
        if done.all():
            return out * 2.0**-k
        rest = ~done
        out[rest] = Limbs(digits[:, rest], self.width)._wide()
        return out * 2.0**-k

    def _wide(self) -> np.ndarray:
        """The doubles nearest carried integers of any size below 2**126."""
        digits = self.digits
        negative = digits[-1] < 0
        if negative.any():
            digits = np.where(negative, _carried(-digits, self.width), digits)
        high, low = self._words(digits)
        out = low.astype(np.float64)  # correctly rounded from uint64
        big = np.flatnonzero(high)
        if big.size:
            out[big] = _round(high[big], low[big])
        return np.where(negative, -out, out)

    def _words(self, digits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The non-negative integers of carried `digits` as (bits 64..127, bits 0..63)."""
        high = np.zeros(digits.shape[1], _U64)
        low = np.zeros(digits.shape[1], _U64)
        for j, digit in enumerate(digits.astype(_U64)):
            at = self.width * j
            if at < 64:
                low |= digit << _U64(at)
                if at > 0:
                    high |= digit >> _U64(64 - at)
            else:
                high |= digit << _U64(at - 64)
        return high, low


def _split_sum(digits: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """The double nearest each carried integer, as ``high * 2**width + digits[0]``: one
    correctly rounded addition of two exact doubles, where `high` (the integer of the upper
    digits) and the lowest digit both have at most 53 bits; and where that holds."""
    if width > 53:
        return np.zeros(digits.shape[1]), np.zeros(digits.shape[1], bool)
    high = digits[-1]
    done = np.ones(digits.shape[1], bool)
    for j in range(len(digits) - 2, 0, -1):
        done &= np.abs(high) < 2 ** (62 - width)  # high << width stays inside int64
        high = np.where(done, high, 0) << width | digits[j]
    done &= np.abs(high) < 2**53
    out = np.ldexp(high.astype(np.float64), width) + digits[0].astype(np.float64)
    return out, done


def _carried(digits: np.ndarray, width: int) -> np.ndarray:
    """The same integers with every digit but the last in ``[0, 2**width)``."""
    out = digits.copy()
    for j in range(len(out) - 1):
        carry = out[j] >> width  # floor division by 2**width
        out[j] -= carry << width
        out[j + 1] += carry
    return out


def _round(high: np.ndarray, low: np.ndarray) -> np.ndarray:
    """The double nearest ``high * 2**64 + low`` (high > 0): its top 64 bits, with a sticky
    bit for the rest, converted once."""
    _, exponent = np.frexp(high.astype(np.float64))
    bits = exponent.astype(np.int64)  # bit length of high, unless the float rounded up
    bits -= (high >> np.clip(bits - 1, 0, 63).astype(_U64)) == 0
    n = bits.astype(_U64)
    top = (high << (_U64(64) - n)) | (low >> n)  # n is 1..63
    sticky = (low & ((_U64(1) << n) - _U64(1))) != 0
    return np.ldexp((top | sticky.astype(_U64)).astype(np.float64), bits)
