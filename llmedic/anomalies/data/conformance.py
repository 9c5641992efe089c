"""Does each value have the type and format its column declares? Bad values grouped into patterns.

Pure and vectorised: one pass of pandas/pyarrow string kernels per column and check. A column of
ten million cells with 120 "N/A"s reports one pattern (``'N/A' × 120``), not 120 lines, and a date
column written three ways reports the three formats with their counts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from llmedic.config import ColumnSchema
from llmedic.redact import MASK, redact_text

__all__ = [
    "COMMON_DATE_FORMATS",
    "MOJIBAKE",
    "Parsed",
    "Pattern",
    "as_text",
    "fix_mojibake",
    "missing_mask",
    "parse_column",
    "shape_of",
]

# Formats a date column is recognised in when it does not use a declared one (day-first before
# month-first: the European form is the commoner in the datasets llmedic was built for; a declared
# format always wins).
COMMON_DATE_FORMATS = (
    "%Y-%m-%d",
    "%d/%m/%Y",
    "%m/%d/%Y",
    "%Y/%m/%d",
    "%d.%m.%Y",
    "%Y%m%d",
    "%d-%m-%Y",
    "%b %d %Y",
    "%d %b %Y",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%d %H:%M:%S",
)

# UTF-8 text decoded as cp1252/latin-1 ("Ã©" for "é", "â€™" for "’"), or U+FFFD from a lossy decode.
MOJIBAKE = "Ã[\u0080-\u00bf\u0152-\u0192\u02c6\u02dc\u2013-\u2122]|â€|Â[\u0080-\u00bf]|\ufffd"

_TRUE = {"true", "t", "yes", "y", "1"}
_FALSE = {"false", "f", "no", "n", "0"}


@dataclass(frozen=True)
class Pattern:
    """A group of bad values: one literal value or one shape, with how many cells have it."""

    kind: str
    """``value`` (a literal), ``shape`` (digits → 9, letters → a), ``date_format``, ``encoding``."""
    pattern: str
    count: int
    example: str = ""

    def describe(self, secret: bool = False) -> str:
        """``'N/A' × 120``; values of a secret column are never shown, and anything that looks like a
        credential is redacted (bad values end up in evidence and reports)."""
        if secret:
            return f"{'value' if self.kind in ('value', 'shape') else self.kind} {MASK} × {self.count}"
        what = redact_text(repr(self.pattern)) if self.kind == "value" else f"{self.kind} {self.pattern}"
        return f"{what} × {self.count}" + (
            f" (e.g. {redact_text(repr(self.example))})" if self.example and self.kind != "value" else ""
        )


@dataclass
class Parsed:
    """One column parsed to its declared type."""

    values: pd.Series
    """Typed values (NaN/NaT where missing or invalid)."""
    invalid: np.ndarray
    """Not missing, but not a valid value of the declared type/format."""
    patterns: list[Pattern] = field(default_factory=list)
    formats: dict[str, int] = field(default_factory=dict)
    """Date columns: how many values use each format (declared or recognised)."""
    encoding_bad: np.ndarray | None = None
    """String columns: cells with mojibake or replacement characters."""


def as_text(s: pd.Series) -> pd.Series:
    """The column as (Arrow-backed where available) strings, missing stays missing."""
    if isinstance(s.dtype, pd.StringDtype) or s.dtype == "str":
        return s
    return s.astype("str")


def _is_text(s: pd.Series) -> bool:
    return s.dtype == object or isinstance(s.dtype, pd.StringDtype) or s.dtype == "str"


# Text columns go through Arrow compute kernels (one C++ pass each, no Python per cell): this is what
# makes an audit of ten million rows take seconds. Each helper answers a NumPy boolean mask.


def arrow_text(s: pd.Series) -> pa.Array | pa.ChunkedArray:
    """The column as an Arrow string array (zero-copy for Arrow-backed columns)."""
    if isinstance(s.dtype, pd.StringDtype) or s.dtype == "str":
        return pa.array(s)
    return pa.array(as_text(s))


def _bytes_all(arr: pa.Array | pa.ChunkedArray, below: int, above: int = -1) -> bool:
    """True when no byte of the column's text lies outside (above, below): a scan of the raw data
    buffer with NumPy, ten times cheaper than a per-string kernel. (A buffer can hold bytes no value
    uses, which can only make this say False; the exact kernel then decides.)"""
    chunks = arr.chunks if isinstance(arr, pa.ChunkedArray) else [arr]
    for chunk in chunks:
        bufs = chunk.buffers()
        if len(bufs) < 3 or bufs[2] is None:
            continue
        data = np.frombuffer(bufs[2], dtype=np.uint8)
        if data.size and (int(data.max()) >= below or int(data.min()) <= above):
            return False
    return True


def _np(mask: pa.Array | pa.ChunkedArray) -> np.ndarray:
    return np.asarray(pc.fill_null(mask, False).to_numpy(zero_copy_only=False), dtype=bool)


def matches(s: pd.Series, regex: str) -> np.ndarray:
    """Which values match ``regex`` in full (RE2 through Arrow; Python's ``re`` when RE2 cannot)."""
    try:
        return _np(pc.match_substring_regex(arrow_text(s), pattern=f"^(?:{regex})$"))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return as_text(s).str.fullmatch(regex).to_numpy(dtype=bool, na_value=False)


def isin_text(s: pd.Series, values: list[str], strip: bool = False) -> np.ndarray:
    """Which values are one of ``values`` (after trimming whitespace when ``strip``)."""
    arr = arrow_text(s)
    if strip:
        arr = pc.utf8_trim_whitespace(arr)
    return _np(pc.is_in(arr, value_set=pa.array(values, type=arr.type)))


def mojibake(s: pd.Series) -> np.ndarray:
    """Cells with mis-decoded UTF-8; only non-ASCII cells can have it, so only they are searched."""
    arr = arrow_text(s)
    out = np.zeros(len(s), dtype=bool)
    if _bytes_all(arr, below=0x80):  # the common case: pure ASCII, nothing to search
        return out
    ascii_ = pc.string_is_ascii(arr)
    non_ascii = ~_np(ascii_) & s.notna().to_numpy()
    if non_ascii.any():
        idx = np.flatnonzero(non_ascii)
        # A boolean filter, not .iloc: Arrow's take on a chunked column copies the whole column.
        out[idx] = (
            as_text(s[non_ascii]).str.contains(MOJIBAKE, regex=True).to_numpy(dtype=bool, na_value=False)
        )
    return out


def strptime_mask(s: pd.Series, fmt: str) -> tuple[np.ndarray, pa.Array | pa.ChunkedArray | None]:
    """Which values parse with ``fmt`` in full, and the parsed timestamps (Arrow's strptime)."""
    if fmt == "ISO8601":
        parsed = pd.to_datetime(as_text(s), format="ISO8601", errors="coerce")
        return parsed.notna().to_numpy(), pa.array(parsed)
    try:
        ts = pc.strptime(arrow_text(s), format=fmt, unit="us", error_is_null=True)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        parsed = pd.to_datetime(as_text(s), format=fmt, errors="coerce")
        return parsed.notna().to_numpy(), pa.array(parsed)
    return _np(pc.is_valid(ts)), ts


def missing_mask(s: pd.Series, tokens: list[str]) -> np.ndarray:
    """Null, blank, or one of the dataset's missing tokens ("null", "undefined", ...)."""
    mask = s.isna().to_numpy(dtype=bool, copy=True)
    if s.dtype == object:  # JSON lists and objects: an empty one is missing too
        mask |= s.map(lambda v: isinstance(v, list | tuple | dict) and len(v) == 0).to_numpy(dtype=bool)
    if _is_text(s):
        # Tokens match exactly; whitespace-only cells are blank. (Trimming every cell would cost
        # three times as much, and a padded " null " still shows up, as a bad value with its pattern.)
        arr = arrow_text(s)
        found = pc.is_in(arr, value_set=pa.array(tokens, type=arr.type))
        # Whitespace-only cells: only possible if some byte is ASCII whitespace/control or non-ASCII.
        if not _bytes_all(arr, below=0x80, above=0x20):
            found = pc.or_(found, pc.utf8_is_space(arr))
        mask |= _np(found)
    return mask


def shape_of(value: str) -> str:
    """``'1,234.5'`` → ``'9,999.9'``; ``'12 mg'`` → ``'99 a'`` (runs of letters collapse)."""
    out = re.sub(r"[0-9]", "9", value)
    return re.sub(r"[A-Za-z]+", "a", out)


def _group(bad: pd.Series, limit: int = 8) -> list[Pattern]:
    """Literal values when there are few distinct ones, shapes otherwise."""
    if bad.empty:
        return []
    counts = bad.value_counts()
    if len(counts) <= limit:
        return [Pattern("value", str(v), int(n)) for v, n in counts.items()]
    shapes = bad.map(shape_of)
    grouped = pd.DataFrame({"shape": shapes, "value": bad}).groupby("shape", sort=False)["value"]
    sizes = grouped.size().sort_values(ascending=False)
    firsts = grouped.first().to_dict()
    return [Pattern("shape", str(k), int(n), str(firsts[k])) for k, n in sizes.head(limit).items()]


def _dates(
    text: pd.Series, ok_base: np.ndarray, col: ColumnSchema, keep: bool = True
) -> tuple[pd.Series, np.ndarray, dict[str, int], list[Pattern]]:
    declared = col.date_formats or ["ISO8601"]
    # Timestamps are only built when asked for (the time column): on ten million rows the array
    # alone costs more than the parsing.
    values = (
        pd.Series(pd.NaT, index=text.index, dtype="datetime64[us]")
        if keep
        else pd.Series([], dtype="datetime64[us]")
    )
    formats: dict[str, int] = {}
    # The first format on the whole column as it is: one kernel pass, no gather, no copy.
    hit, ts = strptime_mask(text, declared[0])
    valid = hit & ok_base
    if valid.any():
        formats[declared[0]] = int(valid.sum())
        if keep and ts is not None:
            values[valid] = pd.Series(ts.to_pandas()).to_numpy()[valid]
    todo = ok_base & ~valid
    patterns: list[Pattern] = []
    if todo.any():
        # What is left (a small share in any sane batch) is worked on as its own small array,
        # trimmed of spaces, one format after the other.
        rest = np.flatnonzero(todo)
        sub = text[todo].str.strip()  # a boolean filter: Arrow's take would copy the column
        left = np.ones(len(rest), dtype=bool)
        for fmt in [*declared, *(f for f in COMMON_DATE_FORMATS if f not in declared)]:
            if not left.any():
                break
            ok, sub_ts = strptime_mask(sub[left], fmt)
            if not ok.any():
                continue
            where = np.flatnonzero(left)[ok]
            formats[fmt] = formats.get(fmt, 0) + int(ok.sum())
            if fmt in declared:
                valid[rest[where]] = True
                if keep and sub_ts is not None:
                    values.iloc[rest[where]] = pd.Series(sub_ts.to_pandas()).to_numpy()[ok]
            else:
                patterns.append(Pattern("date_format", fmt, int(ok.sum()), str(sub.iloc[int(where[0])])))
            left[where] = False
        patterns += _group(text[todo][left])
    invalid = ok_base & ~valid
    return values, invalid, formats, patterns


def parse_column(
    s: pd.Series, col: ColumnSchema, missing: np.ndarray, formats: bool = True, stamps: bool = True
) -> Parsed:
    """Parse ``s`` as ``col.dtype``; values that are neither missing nor valid are ``invalid``.
    ``formats=False`` skips the checks that only judge text (dates, regexes, encodings);
    ``stamps=False`` only validates date columns, without building their timestamps."""
    present = ~missing
    n = len(s)
    if col.dtype in ("int", "float"):
        if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
            invalid = np.zeros(n, dtype=bool)
            if pd.api.types.is_integer_dtype(s.dtype) and isinstance(s.dtype, np.dtype):
                return Parsed(s, invalid)  # integers as they are: no copy, nothing can be invalid
            values = s if s.dtype == np.float64 else s.astype("float64")
        else:
            text = as_text(s).str.strip()
            values = pd.to_numeric(text.where(present), errors="coerce").astype("float64")
            invalid = present & values.isna().to_numpy()
        if col.dtype == "int":
            arr = values.to_numpy()
            frac = np.zeros(n, dtype=bool)
            finite = np.isfinite(arr)
            frac[finite] = arr[finite] != np.floor(arr[finite])
            invalid |= frac & present
        bad = as_text(s[invalid]) if invalid.any() else pd.Series([], dtype="str")
        patterns = _group(bad)
        if col.dtype == "int" and invalid.any():
            patterns = [
                p
                if p.kind != "value" or not _is_number(p.pattern)
                else Pattern("shape", "non-integer", p.count, p.pattern)
                for p in patterns
            ]
        return Parsed(values.where(~invalid), invalid, patterns)
    if col.dtype in ("date", "datetime"):
        if pd.api.types.is_datetime64_any_dtype(s.dtype):
            return Parsed(s, np.zeros(n, dtype=bool), formats={"native": int(present.sum())})
        if not formats:
            return Parsed(pd.Series(pd.NaT, index=s.index, dtype="datetime64[us]"), np.zeros(n, dtype=bool))
        parsed, invalid, seen, patterns = _dates(as_text(s), present.copy(), col, keep=stamps)
        return Parsed(parsed, invalid, patterns, seen)
    if col.dtype == "bool":
        if pd.api.types.is_bool_dtype(s.dtype):
            return Parsed(s, np.zeros(n, dtype=bool))
        text = as_text(s).str.strip().str.lower()
        is_true = text.isin(_TRUE).to_numpy(dtype=bool, na_value=False)
        is_false = text.isin(_FALSE).to_numpy(dtype=bool, na_value=False)
        invalid = present & ~(is_true | is_false)
        values = pd.Series(pd.NA, index=s.index, dtype="boolean")
        values[is_true] = True
        values[is_false] = False
        return Parsed(values, invalid, _group(as_text(s[invalid])))
    # string / category: the values stay as they are (missing ones are told by the mask)
    text = as_text(s)
    invalid = np.zeros(n, dtype=bool)
    found: list[Pattern] = []
    if not formats:
        return Parsed(text, invalid)
    if col.regex is not None:
        invalid = present & ~matches(text, col.regex)
        found = _group(text[invalid])
    enc = mojibake(text) & present
    if enc.any():
        first = str(text[enc].iloc[0])
        found.append(Pattern("encoding", "mis-decoded UTF-8 (mojibake)", int(enc.sum()), first))
    return Parsed(text, invalid, found, encoding_bad=enc)


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def fix_mojibake(value: str) -> str:
    """Undo a UTF-8 text decoded as cp1252 or Latin-1 (what :data:`MOJIBAKE` finds); a value that
    does not round-trip loses only its replacement characters."""
    for enc in ("cp1252", "latin-1"):
        try:
            return value.encode(enc).decode("utf-8")
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
    return value.replace("\ufffd", "")
