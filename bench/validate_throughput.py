"""Validation throughput of data-service on generated files of >= 1 GB, with peak RSS, against
baselines on the same file in the same run.

CSV: data-service's validator vs `pandas.read_csv` (chunked, so it streams too) and a streaming
`pyarrow.csv.open_csv` read. JSONL: the validator vs a plain orjson-per-line loop. Each
measurement runs in its own process so its peak RSS is its own. Targets: CSV >= 0.8x pyarrow and
>= 1x pandas, JSONL >= 0.7x orjson, peak RSS < 300 MB.

    uv run python bench/validate_throughput.py [--quick] [--size-mb 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _datafiles import block_pandas, write_csv, write_jsonl

BLOCK = 1 << 20


def _measure(kind: str, path: str) -> dict[str, float]:
    # Imports and warm-up happen before the clock starts: the file is what is measured.
    if kind != "pandas":
        # pyarrow imports pandas whenever it is installed (here: a dev-only dependency, for this
        # baseline); the service never needs it, so its ~100 MB stay out of the validator's RSS.
        block_pandas()
    import orjson
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    from data_service.service_layer.validation.limits import Limits
    from data_service.service_layer.validation.pipeline import Validation

    pc.utf8_length(pa.array(["warm"]))
    start = time.perf_counter()
    rows = 0
    if kind == "pandas":
        import pandas as pd

        for frame in pd.read_csv(path, chunksize=500_000, dtype=str, keep_default_na=False):
            rows += len(frame)
    elif kind == "pyarrow":
        for batch in pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=4 << 20)):
            rows += batch.num_rows
    elif kind == "orjson":
        with open(path, "rb") as f:
            for line in f:
                orjson.loads(line)
                rows += 1
    elif kind == "validator":
        validation = Validation(Limits())
        with open(path, "rb") as f:
            while block := f.read(BLOCK):
                validation.feed(block)
        report = validation.finish()
        if not report.valid:
            raise SystemExit(f"the generated file is not valid: {report.problems.summary()}")
        rows = report.rows
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"seconds": seconds, "rows": rows, "peak_rss_mb": peak_kb / 1024}


def run(kind: str, path: Path) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--measure", kind, str(path)],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size-mb", type=int, default=None, help="file size (default 1024)")
    parser.add_argument("--quick", action="store_true", help="256 MB files instead of 1 GB")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(*args.measure)))
        return
    size = (args.size_mb or (256 if args.quick else 1024)) << 20
    print(f"load average at start: {os.getloadavg()[0]:.2f} (cores: {os.cpu_count()})")
    with tempfile.TemporaryDirectory(prefix="ftd-bench-validate-") as tmp:
        results = []
        for fmt, writer, baselines in (
            ("csv", write_csv, ("pyarrow", "pandas")),
            ("jsonl", write_jsonl, ("orjson",)),
        ):
            path = Path(tmp) / f"train.{fmt}"
            t = time.perf_counter()
            actual = writer(path, size)
            print(
                f"generated {path.name}: {actual / 1e6:,.0f} MB in {time.perf_counter() - t:.1f} s"
            )
            measured = {kind: run(kind, path) for kind in ("validator", *baselines)}
            for m in measured.values():
                m["mb_s"] = actual / 1e6 / m["seconds"]
            results.append((fmt, actual, measured))
            path.unlink()
    print()
    print(f"{'file':6} {'reader':10} {'MB/s':>8} {'rows':>12} {'peak RSS MB':>12}")
    for fmt, _, measured in results:
        for kind, m in measured.items():
            print(
                f"{fmt:6} {kind:10} {m['mb_s']:8.1f} {int(m['rows']):12,} {m['peak_rss_mb']:12.0f}"
            )
    print()
    targets = []
    csv_m = results[0][2]
    jsonl_m = results[1][2]
    targets.append(
        (
            "CSV validator / pyarrow streaming read",
            csv_m["validator"]["mb_s"] / csv_m["pyarrow"]["mb_s"],
            0.8,
        )
    )
    targets.append(
        (
            "CSV validator / pandas.read_csv",
            csv_m["validator"]["mb_s"] / csv_m["pandas"]["mb_s"],
            1.0,
        )
    )
    targets.append(
        (
            "JSONL validator / orjson loop",
            jsonl_m["validator"]["mb_s"] / jsonl_m["orjson"]["mb_s"],
            0.7,
        )
    )
    for name, ratio, target in targets:
        print(
            f"{name:42} {ratio:5.2f}x  (target >= {target}x)  {'PASS' if ratio >= target else 'MISS'}"
        )
    for fmt, _, measured in results:
        rss = measured["validator"]["peak_rss_mb"]
        print(
            f"{fmt} validator peak RSS {rss:.0f} MB (target < 300 MB)  {'PASS' if rss < 300 else 'MISS'}"
        )


if __name__ == "__main__":
    main()
