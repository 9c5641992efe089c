"""Data audit benchmark: llmedic vs pandera vs Great Expectations vs a single-pass lower bound.

One frame of N rows × 20 mixed columns (8 float, 4 int, 4 category, 2 date-as-text, 2 coded text),
seeded, with known defects: missing values, out-of-range values, values outside the allowed set,
dates in a second format, codes breaking their regex, outliers, duplicate rows. Every tool runs the
same checks on the same frame, each in its own process (so peak memory is its own):

* not-null per column (counting the missing), range per number column, allowed set per category
  column, regex per code column, strftime format per date column (llmedic also looks for mojibake
  in every text column and counts missing values per row, which the others do not);
* a second llmedic row adds what the others cannot do: outliers by three rules, exact duplicate
  rows, and drift of every column against a reference version.

The lower bound is one vectorised pass per column with the fastest kernels there are (numpy for
numbers, Arrow compute for text): what any tool must at least spend to look at every cell once.
Prints wall time, peak memory above the loaded frame, and the ratios against the goals
(≥ 5× faster than Great Expectations, ≥ 2× faster than pandera, within 3× of the lower bound).
Not a test; ``make bench`` runs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

VOCAB = ["alpha", "beta", "gamma", "delta", "epsilon"]
REGEX = r"[A-Z]{2}-\d{4}"
FLOATS, INTS, CATS, DATES, CODES = 8, 4, 4, 2, 2
INT_MAX = 120


def generate(rows: int, seed: int = 42) -> pd.DataFrame:
    """The benchmark frame with its planted defects."""
    rng = np.random.default_rng(seed)
    cols: dict[str, Any] = {}
    for i in range(FLOATS):
        x = rng.normal(100.0, 15.0, rows)
        x[rng.random(rows) < 0.005] = np.nan  # 0.5 % missing
        hit = rng.random(rows) < 0.001
        x[hit] = x[hit] * 50  # 0.1 % far outliers
        cols[f"f{i}"] = x
    for i in range(INTS):
        v = rng.integers(0, INT_MAX + 1, rows)
        v[rng.random(rows) < 0.001] = 999  # out of range
        cols[f"i{i}"] = v
    for i in range(CATS):
        c = np.array([*VOCAB, "unknown"])[np.where(rng.random(rows) < 0.002, 5, rng.integers(0, 5, rows))]
        s = pd.Series(c, dtype="str")
        s[rng.random(rows) < 0.003] = None
        cols[f"c{i}"] = s
    days = pd.date_range("2020-01-01", periods=1500, freq="D")
    iso = pd.Series(days.strftime("%Y-%m-%d"), dtype="str")
    eu = pd.Series(days.strftime("%d/%m/%Y"), dtype="str")
    for i in range(DATES):
        idx = rng.integers(0, len(days), rows)
        d = iso.to_numpy()[idx].copy()
        wrong = rng.random(rows) < 0.001
        d[wrong] = eu.to_numpy()[idx[wrong]]
        cols[f"d{i}"] = pd.Series(d, dtype="str")
    letters = np.array(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ"))
    for i in range(CODES):
        a, b = letters[rng.integers(0, 26, rows)], letters[rng.integers(0, 26, rows)]
        n = rng.integers(0, 10000, rows)
        code = pd.Series(
            np.char.add(np.char.add(np.char.add(a, b), "-"), np.char.zfill(n.astype(str), 4)), dtype="str"
        )
        bad = rng.random(rows) < 0.001
        code[bad] = code[bad].str.lower()
        cols[f"s{i}"] = code
    frame = pd.DataFrame(cols)
    dup = rng.choice(rows, size=max(1, rows // 10000), replace=False)
    frame.iloc[dup[: len(dup) // 2]] = frame.iloc[dup[len(dup) // 2 : len(dup) // 2 * 2]].to_numpy()
    return frame


SAME_CHECKS = ["missing", "formats", "range", "allowed"]


def llmedic_config(checks: list[str] | None = None) -> Any:
    from llmedic.config import AUDIT_CHECKS, DatasetConfig

    columns: dict[str, Any] = {}
    for i in range(FLOATS):
        columns[f"f{i}"] = {"dtype": "float", "min": -1e6, "max": 1e6}
    for i in range(INTS):
        columns[f"i{i}"] = {"dtype": "int", "min": 0, "max": INT_MAX}
    for i in range(CATS):
        columns[f"c{i}"] = {"dtype": "category", "allowed": VOCAB}
    for i in range(DATES):
        columns[f"d{i}"] = {"dtype": "date", "date_formats": ["%Y-%m-%d"]}
    for i in range(CODES):
        columns[f"s{i}"] = {"dtype": "string", "regex": REGEX}
    return DatasetConfig.model_validate({"columns": columns, "checks": checks or list(AUDIT_CHECKS)})


# --- the tools ------------------------------------------------------------------------------------


def run_llmedic(
    frame: pd.DataFrame, reference: pd.DataFrame | None, checks: list[str] | None
) -> dict[str, Any]:
    from llmedic.anomalies.data.audit import audit_frame

    audit = audit_frame(frame, llmedic_config(checks), reference=reference)
    return {
        "breaches": len(audit.breaches()),
        "missing": audit.missing_cells,
        "duplicates": audit.duplicate_rows,
    }


def run_pandera(frame: pd.DataFrame) -> dict[str, Any]:
    import pandera.pandas as pa

    def date_ok(s: pd.Series) -> pd.Series:
        return pd.to_datetime(s, format="%Y-%m-%d", errors="coerce").notna()

    columns: dict[str, Any] = {}
    for i in range(FLOATS):
        columns[f"f{i}"] = pa.Column(float, pa.Check.in_range(-1e6, 1e6), nullable=False)
    for i in range(INTS):
        columns[f"i{i}"] = pa.Column(int, pa.Check.in_range(0, INT_MAX), nullable=False)
    for i in range(CATS):
        columns[f"c{i}"] = pa.Column(str, pa.Check.isin(VOCAB), nullable=False)
    for i in range(DATES):
        columns[f"d{i}"] = pa.Column(str, pa.Check(date_ok), nullable=False)
    for i in range(CODES):
        columns[f"s{i}"] = pa.Column(str, pa.Check.str_matches(f"^{REGEX}$"), nullable=False)
    schema = pa.DataFrameSchema(columns)
    try:
        schema.validate(frame, lazy=True)
        failures = 0
    except pa.errors.SchemaErrors as exc:
        failures = len(exc.failure_cases)
    return {"failure_cases": failures}


def run_gx(frame: pd.DataFrame) -> dict[str, Any]:
    import great_expectations as gx
    import great_expectations.expectations as gxe

    context = gx.get_context(mode="ephemeral")
    batch = (
        context.data_sources.add_pandas("bench")
        .add_dataframe_asset("frame")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name="bench")
    for col in frame.columns:
        suite.add_expectation(gxe.ExpectColumnValuesToNotBeNull(column=col))
    for i in range(FLOATS):
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column=f"f{i}", min_value=-1e6, max_value=1e6)
        )
    for i in range(INTS):
        suite.add_expectation(
            gxe.ExpectColumnValuesToBeBetween(column=f"i{i}", min_value=0, max_value=INT_MAX)
        )
    for i in range(CATS):
        suite.add_expectation(gxe.ExpectColumnValuesToBeInSet(column=f"c{i}", value_set=VOCAB))
    for i in range(DATES):
        suite.add_expectation(
            gxe.ExpectColumnValuesToMatchStrftimeFormat(column=f"d{i}", strftime_format="%Y-%m-%d")
        )
    for i in range(CODES):
        suite.add_expectation(gxe.ExpectColumnValuesToMatchRegex(column=f"s{i}", regex=f"^{REGEX}$"))
    suite = context.suites.add(suite)
    result = batch.validate(suite, result_format="SUMMARY")
    return {"failed_expectations": sum(1 for r in result.results if not r.success)}


def run_lower_bound(frame: pd.DataFrame) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    bad = 0
    for i in range(FLOATS):
        x = frame[f"f{i}"].to_numpy()
        bad += int(np.count_nonzero(np.isnan(x) | (x < -1e6) | (x > 1e6)))
    for i in range(INTS):
        v = frame[f"i{i}"].to_numpy()
        bad += int(np.count_nonzero((v < 0) | (v > INT_MAX)))
    vocab = pa.array(VOCAB)
    for i in range(CATS):
        arr = pa.array(frame[f"c{i}"])
        bad += int(pc.sum(pc.invert(pc.fill_null(pc.is_in(arr, value_set=vocab), False))).as_py() or 0)
    for i in range(DATES):
        arr = pa.array(frame[f"d{i}"])
        bad += int(
            pc.sum(pc.is_null(pc.strptime(arr, format="%Y-%m-%d", unit="s", error_is_null=True))).as_py() or 0
        )
    for i in range(CODES):
        arr = pa.array(frame[f"s{i}"])
        bad += int(pc.sum(pc.invert(pc.match_substring_regex(arr, pattern=f"^{REGEX}$"))).as_py() or 0)
    return {"bad_cells": bad}


TOOLS = {
    "llmedic": "llmedic, the same checks",
    "llmedic-all": "llmedic, all checks (+ outliers by 3 rules, duplicate rows, drift vs a reference)",
    "pandera": "pandera 0.35 (lazy validation)",
    "gx": "Great Expectations 1.x (pandas)",
    "lower": "single pass lower bound (numpy + Arrow compute)",
}


def child(tool: str, path: Path, ref: Path | None) -> None:
    frame = pd.read_parquet(path)
    reference = pd.read_parquet(ref) if ref is not None and tool == "llmedic-all" else None
    # Imports happen before the clock starts: the figure is the checking, not the start-up.
    if tool.startswith("llmedic"):
        import llmedic.anomalies.data.audit  # noqa: F401
    elif tool == "pandera":
        import pandera.pandas  # noqa: F401
    elif tool == "gx":
        import great_expectations  # noqa: F401
    # Peak memory above the loaded frame: RSS sampled every 5 ms while the checks run (the kernel's
    # high-water mark cannot be reset, and reading the file has its own transient peak).
    base = _rss()
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _rss())
            done.wait(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    if tool.startswith("llmedic"):
        out = run_llmedic(frame, reference, SAME_CHECKS if tool == "llmedic" else None)
    elif tool == "pandera":
        out = run_pandera(frame)
    elif tool == "gx":
        out = run_gx(frame)
    else:
        out = run_lower_bound(frame)
    seconds = time.perf_counter() - start
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss())
    print(
        json.dumps(
            {"tool": tool, "seconds": seconds, "extra_peak_mb": (peak[0] - base) / 2**20, "result": out}
        )
    )


def _rss() -> int:
    """Resident set size in bytes, now."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--data", type=Path, default=Path(os.environ.get("TMPDIR", "/tmp")))
    ap.add_argument("--timeout", type=float, default=3600)
    ap.add_argument("--child", nargs=3, metavar=("TOOL", "FILE", "REF"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        tool, file, ref = args.child
        child(tool, Path(file), Path(ref) if ref != "-" else None)
        return
    path = args.data / f"llmedic-bench-{args.rows}.parquet"
    ref = args.data / f"llmedic-bench-{args.rows}-ref.parquet"
    if not path.exists() or not ref.exists():
        t = time.perf_counter()
        generate(args.rows, seed=42).to_parquet(path)
        generate(args.rows, seed=43).to_parquet(ref)
        print(f"generated {args.rows:,} × 20 in {time.perf_counter() - t:.1f}s → {path}", flush=True)
    results: dict[str, dict[str, Any]] = {}
    for tool in args.tools.split(","):
        t = time.perf_counter()
        try:
            proc = subprocess.run(
                [sys.executable, __file__, "--child", tool, str(path), str(ref)],
                capture_output=True,
                text=True,
                timeout=args.timeout,
                check=False,
            )
        except subprocess.TimeoutExpired:
            print(f"{tool}: gave up after {args.timeout:.0f}s", flush=True)
            results[tool] = {"seconds": float("inf"), "extra_peak_mb": float("nan"), "result": "timeout"}
            continue
        line = next((ln for ln in reversed(proc.stdout.splitlines()) if ln.startswith("{")), None)
        if proc.returncode != 0 or line is None:
            print(f"{tool}: failed ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}", flush=True)
            continue
        results[tool] = json.loads(line)
        r = results[tool]
        print(
            f"{tool}: {r['seconds']:.1f}s, +{r['extra_peak_mb']:.0f} MB, {r['result']} ({time.perf_counter() - t:.0f}s with load)",
            flush=True,
        )
    ours = results.get("llmedic", {}).get("seconds")
    print()
    print(
        f"Data audit, {args.rows:,} rows × 20 columns — {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, pandas {pd.__version__}"
    )
    print("| tool | wall s | peak MB above the frame | llmedic is … | goal |")
    print("|---|---|---|---|---|")
    goals = {"gx": ("faster", 5.0), "pandera": ("faster", 2.0), "lower": ("within", 3.0)}
    for tool, label in TOOLS.items():
        if tool not in results:
            continue
        r = results[tool]
        ratio, goal = "", ""
        if ours and tool in goals:
            kind, target = goals[tool]
            if kind == "faster":
                x = r["seconds"] / ours
                ratio, goal = (
                    f"{x:.1f}× faster",
                    f"≥ {target:g}× faster: {'met' if x >= target else 'NOT met'}",
                )
            else:
                x = ours / r["seconds"]
                ratio, goal = (
                    f"{x:.1f}× the lower bound",
                    f"≤ {target:g}×: {'met' if x <= target else 'NOT met'}",
                )
        print(f"| {label} | {r['seconds']:.2f} | {r['extra_peak_mb']:.0f} | {ratio} | {goal} |")


if __name__ == "__main__":
    main()
