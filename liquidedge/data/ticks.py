"""Trade/tick events: load them from CSV or Parquet, check them, and say exactly what is wrong.

Everything downstream (bars, windows, the LTC's dt) assumes sorted, finite events with
non-negative sizes; a silent fix here would become a wrong model later, so bad input is reported
with the file, the 1-based data row (as counted in the file, header excluded) and the field.
The only repair offered is an explicit, reported, stable re-sort of out-of-order stamps.
pandas/pyarrow are imported only inside the file loader, so the in-memory path runs on numpy alone.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from liquidedge.data.timeutil import format_ns
from liquidedge.errors import ConfigError, DataValidationError

POLICIES = ("strict", "repair")
_EPOCH_FACTOR = {"s": 1_000_000_000, "ms": 1_000_000, "us": 1_000, "ns": 1}
_SIDE_WORDS = {"buy": 1, "b": 1, "bid": 1, "+1": 1, "1": 1,
               "sell": -1, "s": -1, "ask": -1, "-1": -1, "0": 0, "": 0, "unknown": 0, "u": 0}



def _pandas():
    """pandas, imported only when a file is read (the edge path never needs it)."""
    try:
        import pandas
    except ImportError as exc:
        raise ImportError("reading event files needs pandas (and pyarrow for Parquet): "
                          "pip install 'liquidedge[all]' or pip install pandas pyarrow") from exc
    return pandas


def check_epoch_unit(unit: str) -> None:
    if unit not in _EPOCH_FACTOR:
        raise ConfigError(f"epoch_unit {unit!r}: expected one of {list(_EPOCH_FACTOR)}")


def lookup_preset(presets: dict, name: str, what: str = "column preset"):
    """``presets[name]``, or a ``ConfigError`` listing the names there are."""
    try:
        return presets[name]
    except KeyError:
        raise ConfigError(f"unknown {what} {name!r}; expected one of {sorted(presets)}") from None


@dataclass(frozen=True)
class ColumnMap:
    """Which columns hold what. ``size``/``side`` may be ``None`` (absent: size 1, side unknown).

    ``tz`` is the zone of *naive* timestamps (no UTC offset); ``None`` means UTC. Stamps with an
    offset keep their own zone. ``epoch_unit`` is the unit of integer timestamp columns.
    """
    timestamp: str = "timestamp"
    price: str = "price"
    size: str | None = "size"
    side: str | None = None
    tz: str | None = None
    epoch_unit: str = "ns"

    def __post_init__(self):
        check_epoch_unit(self.epoch_unit)

    @classmethod
    def preset(cls, name: str) -> "ColumnMap":
        """A named column layout (see ``PRESETS``)."""
        return lookup_preset(PRESETS, name)

    @classmethod
    def mlfinpy(cls) -> "ColumnMap":
        """The mlfinpy E-mini sample: DateTime/Price/Volume, naive stamps in CME exchange time
        (America/Chicago: the file opens at Globex's Sunday 17:00 CT session start)."""
        return PRESETS["mlfinpy"]


PRESETS: dict[str, ColumnMap] = {
    "default": ColumnMap(),
    "mlfinpy": ColumnMap("DateTime", "Price", "Volume", tz="America/Chicago"),
    "sensor": ColumnMap("time", "value", size=None),
}
# Auto-detection only picks column *names*; a time zone is never guessed.
_AUTO = [("timestamp", "price", "size", "side"), ("DateTime", "Price", "Volume", None),
         ("time", "price", "volume", "side"), ("time", "value", None, None),
         ("datetime", "price", "volume", "side"), ("date_time", "price", "volume", None)]


@dataclass(frozen=True)
class RepairReport:
    """What ``policy="repair"`` changed: events re-ordered by a stable sort, none dropped."""
    n_events: int
    n_out_of_order: int          # rows whose stamp is earlier than the previous row's
    n_moved: int                 # events whose position changed
    first_rows: tuple[int, ...]  # 1-based data rows (as in the file) of the first moved events

    def __str__(self) -> str:
        rows = ", ".join(map(str, self.first_rows))
        return (f"re-sorted {self.n_moved} of {self.n_events} events by timestamp "
                f"({self.n_out_of_order} out-of-order rows; first moved rows: {rows}); nothing dropped")


@dataclass
class Events:
    """A time-ordered stream of trades: parallel 1-D numpy arrays plus where they came from.

    ``time_ns`` is int64 UTC epoch nanoseconds (duplicates allowed, kept in input order),
    ``price``/``size`` float64, ``side`` int8 (+1 buy, -1 sell, 0 unknown) or ``None``.
    ``tz`` is the zone the stamps were given in (for display), ``source`` the file, and
    ``repair`` the ``RepairReport`` when the loader re-sorted. Construction checks shapes only;
    call ``validate_events`` for values.
    """
    time_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray | None = None
    tz: str = "UTC"
    source: str | None = None
    repair: RepairReport | None = None

    def __post_init__(self):
        self.time_ns = _as_1d(self.time_ns, np.int64, "time_ns")
        self.price = _as_1d(self.price, np.float64, "price")
        self.size = _as_1d(self.size, np.float64, "size")
        if self.side is not None:
            self.side = _as_1d(self.side, np.int8, "side")
        n = len(self.time_ns)
        for name in ("price", "size", "side"):
            arr = getattr(self, name)
            if arr is not None and len(arr) != n:
                raise DataValidationError(f"has {len(arr)} values but time_ns has {n}", field=name,
                                          file=self.source, expected="arrays of equal length")

    def __len__(self) -> int:
        return len(self.time_ns)

    def slice(self, start: int | None = None, stop: int | None = None) -> "Events":
        """Events ``start:stop`` (views, no copy) with the same tz/source."""
        sl = slice(start, stop)
        return Events(self.time_ns[sl], self.price[sl], self.size[sl],
                      None if self.side is None else self.side[sl], self.tz, self.source)

    def times(self) -> np.ndarray:
        """Stamps as ``datetime64[ns]`` (UTC)."""
        return self.time_ns.view("datetime64[ns]")


def _as_1d(values, dtype, name) -> np.ndarray:
    try:
        arr = np.ascontiguousarray(values, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataValidationError(f"cannot be read as {np.dtype(dtype).name}: {exc}", field=name) from None
    if arr.ndim != 1:
        raise DataValidationError(f"has shape {arr.shape}", field=name, expected="a 1-D array")
    return arr


@dataclass(frozen=True)
class Finding:
    """One validation problem: the first offending row (1-based), how many rows share it."""
    kind: str          # unparsable | nonfinite | negative | nonpositive | side | unsorted | empty | ...
    field: str | None
    row: int | None
    count: int
    message: str
    expected: str | None = None

    def to_error(self, file: str | None) -> DataValidationError:
        more = f" ({self.count - 1} more rows like it)" if self.count > 1 else ""
        return DataValidationError(self.message + more, file=file, row=self.row,
                                   field=self.field, expected=self.expected)


def check_arrays(time_ns: np.ndarray, price: np.ndarray, size: np.ndarray,
                 side: np.ndarray | None = None, *, fields: tuple[str, str, str, str] = (
                     "time_ns", "price", "size", "side"),
                 row_offset: int = 0, after_ns: int | None = None,
                 require_positive_price: bool = True) -> list[Finding]:
    """All problems in parallel event arrays, first offending row of each kind; never raises.

    ``row_offset`` is added to 0-based positions (+1) so rows match the source; ``after_ns`` is the
    last stamp already seen (streams: a chunk must not start before the previous one ended).
    """
    f_time, f_price, f_size, f_side = fields
    out: list[Finding] = []

    def add(kind, fld, bad, message, expected):
        idx = np.flatnonzero(bad)
        if idx.size:
            i = int(idx[0])
            out.append(Finding(kind, fld, row_offset + i + 1, int(idx.size), message(i), expected))

    if len(time_ns) == 0:
        out.append(Finding("empty", None, None, 0, "empty input: no events", "at least one event"))
        return out
    add("nonfinite", f_price, ~np.isfinite(price), lambda i: f"non-finite price {float(price[i])!r}",
        "a finite number")
    if require_positive_price:
        with np.errstate(invalid="ignore"):
            add("nonpositive", f_price, np.isfinite(price) & (price <= 0),
                lambda i: f"non-positive price {float(price[i])!r}", "price > 0 (log returns need it)")
    add("nonfinite", f_size, ~np.isfinite(size), lambda i: f"non-finite size {float(size[i])!r}",
        "a finite number")
    with np.errstate(invalid="ignore"):
        add("negative", f_size, size < 0, lambda i: f"negative size {float(size[i])!r}", "size >= 0")
    if side is not None:
        add("side", f_side, (side < -1) | (side > 1), lambda i: f"side {int(side[i])} not in -1/0/+1",
            "-1 (sell), 0 (unknown) or +1 (buy)")
    back = np.flatnonzero(np.diff(time_ns) < 0) + 1
    if after_ns is not None and time_ns[0] < after_ns:
        back = np.concatenate([[0], back])
    if back.size:
        i = int(back[0])
        prev = after_ns if i == 0 else int(time_ns[i - 1])
        out.append(Finding("unsorted", f_time, row_offset + i + 1, int(back.size),
                           f"timestamp {format_ns(int(time_ns[i]))} is earlier than the previous "
                           f"one ({format_ns(prev)})",
                           "non-decreasing timestamps (or load with policy='repair' to sort)"))
    return out


def validate_events(events: Events, *, row_offset: int = 0, after_ns: int | None = None,
                    require_positive_price: bool = True) -> Events:
    """Raise ``DataValidationError`` for the first problem in in-memory events; return them if fine.

    Use ``row_offset``/``after_ns`` when checking a chunk of a stream (rows counted from the
    stream's start; the chunk must not go back in time).
    """
    findings = check_arrays(events.time_ns, events.price, events.size, events.side,
                            row_offset=row_offset, after_ns=after_ns,
                            require_positive_price=require_positive_price)
    if findings:
        raise findings[0].to_error(events.source)
    return events


# ----------------------------------------------------------------------------------- file loading
@dataclass
class RawTable:
    """A file's columns after parsing but before validation (used by ``load_events`` and inspect)."""
    path: str
    columns: ColumnMap
    time_ns: np.ndarray
    price: np.ndarray
    size: np.ndarray
    side: np.ndarray | None
    tz: str
    findings: list[Finding] = field(default_factory=list)  # parse problems (timestamps, side, numbers)
    line_offset: int = 1  # file line of data row r is r + line_offset (CSV header); 0 for Parquet
    time_bad: np.ndarray | None = None  # rows whose stamp could not be parsed (time_ns 0 there)


def read_frame(path: str | Path):
    """A CSV/TSV/Parquet file as a pandas frame: ``(frame, file name, line offset)``, where data
    row r sits on file line r + offset (1 for the CSV header, 0 for Parquet).

    Raises ``DataValidationError`` when nothing can be read and ``ConfigError`` for an unknown type.
    """
    pd = _pandas()

    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise DataValidationError("file not found", file=name)
    suffixes = "".join(path.suffixes).lower()
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(path)
            line_offset = 0
        elif any(s in suffixes for s in (".csv", ".txt", ".tsv")):
            df = pd.read_csv(path, sep="\t" if ".tsv" in suffixes else ",")
            line_offset = 1
        else:
            raise ConfigError(f"{name}: unknown file type {path.suffix!r}; expected .csv, .tsv or .parquet")
    except pd.errors.EmptyDataError:
        raise DataValidationError("empty input: no header and no rows", file=name,
                                  expected="a header line and at least one data row") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"malformed file: {exc}", file=name) from None
    except (OSError, ValueError) as exc:
        if isinstance(exc, ConfigError):
            raise
        raise DataValidationError(f"cannot read: {exc}", file=name) from None
    return df, name, line_offset


def read_table(path: str | Path, columns: ColumnMap | str | None = None) -> RawTable:
    """Read and parse a CSV/Parquet file into arrays, collecting (not raising) value problems.

    Raises ``DataValidationError`` only when nothing can be read (missing file, no header, missing
    column) and ``ConfigError`` for an unknown file type.
    """
    df, name, line_offset = read_frame(path)
    cmap = resolve_columns(columns, list(df.columns), name)
    findings: list[Finding] = []
    n = len(df)
    _rownote = row_note(line_offset)
    time_ns, bad_t, tz = parse_stamp_column(df, cmap, name, findings, _rownote)
    price = _numeric(df[cmap.price], cmap.price, findings, _rownote)
    size = (np.ones(n) if cmap.size is None
            else _numeric(df[cmap.size], cmap.size, findings, _rownote))
    side = None if cmap.side is None else _parse_side(df[cmap.side], cmap.side, findings, _rownote)
    return RawTable(name, cmap, time_ns, price, size, side, tz, findings, line_offset, bad_t)


def row_note(line_offset: int):
    """``note(i)``: where data row i sits in the file, for messages (nothing for Parquet)."""
    def note(i: int) -> str:
        return f" (line {i + 1 + line_offset} of the file)" if line_offset else ""
    return note


def parse_stamp_column(df, cmap, file: str, findings: list[Finding], rownote):
    """``_parse_times`` of ``df[cmap.timestamp]``, unparsable stamps recorded as one finding.
    ``cmap`` is any column map with ``timestamp``, ``tz`` and ``epoch_unit`` (trades or bars)."""
    col = df[cmap.timestamp]
    time_ns, bad, tz = _parse_times(col, cmap, file)
    if bad.any():
        idx = np.flatnonzero(bad)
        i = int(idx[0])
        findings.append(Finding("unparsable", cmap.timestamp, i + 1, int(idx.size),
                                f"cannot parse timestamp {col.iloc[i]!r}{rownote(i)}",
                                "an ISO-8601/pandas date-time or integer epoch "
                                f"{cmap.epoch_unit} (naive stamps read in {cmap.tz or 'UTC'})"))
    return time_ns, bad, tz


def resolve_columns(columns, header: list[str], file: str) -> ColumnMap:
    if isinstance(columns, str):
        columns = ColumnMap.preset(columns)
    if columns is None:
        for ts, pr, sz, sd in _AUTO:
            if ts in header and pr in header:
                columns = ColumnMap(ts, pr, sz if sz in header else None,
                                    sd if sd is not None and sd in header else None)
                break
        else:
            raise DataValidationError(
                f"cannot find timestamp/price columns in header {header}", file=file,
                expected="columns like timestamp,price,size or DateTime,Price,Volume "
                         "(or pass columns=ColumnMap(...))")
    if not isinstance(columns, ColumnMap):
        raise ConfigError(f"columns: expected a ColumnMap or preset name, got {type(columns).__name__}")
    for role in ("timestamp", "price", "size", "side"):
        col = getattr(columns, role)
        if col is not None and col not in header:
            raise DataValidationError(f"missing column {col!r} (the {role} column)", file=file,
                                      field=col, expected=f"one of the header columns {header}")
    return columns


_OFFSET = re.compile(r"(?:[zZ]|[+-]\d\d(?::?\d\d)?)$")


def _parse_times(col, cmap: ColumnMap, file: str):
    """Stamps -> (int64 UTC ns, bad-row mask, tz name). Never guesses: what fails is flagged."""
    pd = _pandas()
    from pandas.api import types as pdt

    n = len(col)
    if pdt.is_bool_dtype(col.dtype):
        return np.zeros(n, np.int64), np.ones(n, bool), "UTC"
    if pdt.is_integer_dtype(col.dtype) or pdt.is_float_dtype(col.dtype):
        factor = _EPOCH_FACTOR[cmap.epoch_unit]
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
        limit = np.iinfo(np.int64).max / factor
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(vals) | (np.abs(vals) >= limit)
        if pdt.is_integer_dtype(col.dtype):
            ns = col.to_numpy(dtype=np.int64) * factor
            ns[bad] = 0
        else:
            ns = np.where(bad, 0, np.round(np.where(bad, 0, vals) * factor)).astype(np.int64)
        return ns, bad, cmap.tz or "UTC"
    if isinstance(col.dtype, pd.DatetimeTZDtype) or pdt.is_datetime64_dtype(col.dtype):
        parsed = col
        mixed_naive = np.zeros(n, bool)
    else:
        text = col.astype("string")
        mixed_naive = np.zeros(n, bool)
        try:
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce")
        except (ValueError, TypeError):
            # Different UTC offsets (or some stamps without one): convert all to UTC, but flag the
            # ones that had no offset rather than silently reading them as UTC.
            parsed = pd.to_datetime(text, format="ISO8601", errors="coerce", utc=True)
            has_offset = text.str.strip().str.contains(_OFFSET, na=False).to_numpy(bool)
            mixed_naive = ~has_offset & text.notna().to_numpy(bool)
        nat = parsed.isna().to_numpy(bool) & text.notna().to_numpy(bool)
        if nat.any():  # other pandas forms ("Sep 3 2013 10:00", "2013/09/03") row by row
            retry = pd.to_datetime(text[nat], format="mixed", errors="coerce",
                                   utc=parsed.dt.tz is not None)
            if (retry.dt.tz is None) == (parsed.dt.tz is None):
                parsed = parsed.copy()
                if parsed.dt.tz is None:
                    parsed[nat] = retry.astype(parsed.dtype)
                else:
                    parsed[nat] = retry.dt.tz_convert(parsed.dt.tz).astype(parsed.dtype)
    bad = parsed.isna().to_numpy(bool) | mixed_naive
    if parsed.dt.tz is None:
        tz = cmap.tz or "UTC"
        if tz != "UTC":
            try:
                localized = parsed.dt.tz_localize(tz, ambiguous="NaT", nonexistent="NaT")
            except Exception as exc:
                raise ConfigError(f"cannot read naive stamps of {file} in time zone {tz!r}: {exc}") from None
            bad |= localized.isna().to_numpy(bool)  # DST gaps/overlaps: reported, not guessed
            parsed = localized
        else:
            parsed = parsed.dt.tz_localize("UTC")
    else:
        tz = str(parsed.dt.tz)
    utc = parsed.dt.tz_convert("UTC")
    ns = pd.DatetimeIndex(utc).as_unit("ns").asi8.copy()
    ns[bad] = 0
    return ns, bad, tz


def _numeric(col, name: str, findings: list[Finding], rownote) -> np.ndarray:
    pd = _pandas()
    from pandas.api import types as pdt

    if pdt.is_bool_dtype(col.dtype):
        findings.append(Finding("unparsable", name, 1, len(col), f"boolean column {name!r}", "numbers"))
        return np.zeros(len(col))
    if pdt.is_numeric_dtype(col.dtype):
        return col.to_numpy(dtype=np.float64, na_value=np.nan)
    vals = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    text_bad = np.isnan(vals) & col.notna().to_numpy(bool)
    # Strings pandas does not read as numbers: "nan"/"inf" spelled oddly, "abc", "1,5", ...
    if text_bad.any():
        idx = np.flatnonzero(text_bad)
        i = int(idx[0])
        findings.append(Finding("unparsable", name, i + 1, int(idx.size),
                                f"not a number: {col.iloc[i]!r}{rownote(i)}", "a finite number"))
    return vals


def _parse_side(col, name: str, findings: list[Finding], rownote) -> np.ndarray:
    from pandas.api import types as pdt

    if pdt.is_numeric_dtype(col.dtype) and not pdt.is_bool_dtype(col.dtype):
        vals = col.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isin(vals, (-1.0, 0.0, 1.0))
        out = np.where(bad, 0, vals).astype(np.int8)
    else:
        words = col.astype("string").str.strip().str.lower().fillna("")
        mapped = words.map(_SIDE_WORDS)
        bad = mapped.isna().to_numpy(bool)
        out = mapped.fillna(0).to_numpy(dtype=np.int8)
    if bad.any():
        idx = np.flatnonzero(bad)
        i = int(idx[0])
        findings.append(Finding("side", name, i + 1, int(idx.size),
                                f"unknown side {col.iloc[i]!r}{rownote(i)}",
                                "buy/sell, B/S or +1/-1/0"))
    return out


def load_events(path: str | Path, columns: ColumnMap | str | None = None, *,
                policy: str = "strict", require_positive_price: bool = True) -> Events:
    """Load trades from a CSV/TSV or Parquet file into validated ``Events``.

    ``columns``: a ``ColumnMap``, a preset name (``"mlfinpy"``, ``"default"``, ``"sensor"``) or
    ``None`` to detect common column names (a time zone is never guessed: naive stamps are UTC
    unless the map says otherwise). ``policy="strict"`` raises on unsorted stamps; ``"repair"``
    sorts them stably and attaches a ``RepairReport`` (``events.repair``). Any other problem
    (unparsable stamp, non-finite or non-positive price, non-finite or negative size, empty file,
    missing column) raises ``DataValidationError`` naming file, row and field, under both policies.
    """
    if policy not in POLICIES:
        raise ConfigError(f"policy {policy!r}: expected one of {POLICIES}")
    raw = read_table(path, columns)
    c = raw.columns
    if len(raw.time_ns) == 0:
        raise DataValidationError("empty input: header but no data rows", file=raw.path,
                                  expected="at least one data row")
    if raw.findings:
        raise raw.findings[0].to_error(raw.path)
    findings = check_arrays(raw.time_ns, raw.price, raw.size, raw.side,
                            fields=(c.timestamp, c.price, c.size or "size", c.side or "side"),
                            require_positive_price=require_positive_price)
    hard = [f for f in findings if f.kind != "unsorted"]
    if hard:
        raise hard[0].to_error(raw.path)
    time_ns, price, size, side, report = raw.time_ns, raw.price, raw.size, raw.side, None
    if findings:  # only "unsorted" left
        if policy == "strict":
            raise findings[0].to_error(raw.path)
        order = np.argsort(time_ns, kind="stable")
        moved = np.flatnonzero(order != np.arange(len(order)))
        rows = np.sort(order[moved])[:10] + 1
        report = RepairReport(len(order), findings[0].count, int(moved.size), tuple(int(r) for r in rows))
        time_ns, price, size = time_ns[order], price[order], size[order]
        side = None if side is None else side[order]
    return Events(time_ns, price, size, side, raw.tz, raw.path, report)


def save_events(events: Events, path: str | Path) -> Path:
    """Write events to Parquet (``time`` as tz-aware timestamps, ``price``, ``size``[, ``side``])."""
    pd = _pandas()

    path = Path(path)
    times = pd.DatetimeIndex(events.time_ns.view("datetime64[ns]")).tz_localize("UTC").tz_convert(events.tz)
    cols = {"timestamp": times, "price": events.price, "size": events.size}
    if events.side is not None:
        cols["side"] = events.side
    pd.DataFrame(cols).to_parquet(path, index=False)
    return path
