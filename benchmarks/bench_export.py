"""Export memory benchmark: peak RSS of ``db.export`` (streaming) against the whole-table path, in one run.

    .venv/bin/python benchmarks/bench_export.py                          # 200 000 records, memory://
    .venv/bin/python benchmarks/bench_export.py --n 50000,200000         # how each grows with N
    .venv/bin/python benchmarks/bench_export.py --backend file           # file:// (filling takes minutes)

Each case runs in a fresh process that opens the store (memory:// is filled in that process;
file:// is filled once beforehand, ``TMPDIR=/dev/shm`` puts it on tmpfs), loads what both
export paths use (``pyarrow.dataset``, ``pyarrow.parquet``, Arrow's I/O thread pool, warmed
by a one-row ``write_dataset``), then resets the kernel's peak-RSS mark (``/proc/self/clear_refs``)
and takes its base. Printed per case: the peak above that base while it exports.

* ``whole``: what ``db.export`` did before it streamed: ``to_arrow`` of the whole resource,
  then ``write_table`` (sort, one in-memory file per Hive partition); the size of that Arrow
  table is printed beside it: the baseline measured in the same run;
* ``stream``: ``db.export`` now (``iter_batches``, each batch appended to its folder's open file);
* ``dataset``: the same batches through ``pyarrow.dataset.write_dataset``, which ``db.export`` does
  not use: its I/O thread pool's allocator caches cost more than the whole table at this size.

What loading the libraries and warming the pool cost (the same for both, paid once per
process) is printed apart. Records: id, name, age, country (the partition, 20 values), score,
active, created, tags, and a 120-character note.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

COUNTRIES = [f"C{i:02d}" for i in range(20)]
ATTRIBUTES = {
    "name": "string",
    "age": "number|integer",
    "country": "string",
    "score": "number",
    "active": "boolean",
    "created": "datetime",
    "tags": "array|items:string",
    "note": "string",
}


def frame(start: int, n: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(start)
    return pd.DataFrame({
        "id": [f"r{i:08d}" for i in range(start, start + n)],
        "name": [f"name {i}" for i in range(start, start + n)],
        "age": rng.integers(0, 90, n),
        "country": rng.choice(COUNTRIES, n),
        "score": rng.random(n),
        "active": rng.random(n) > 0.5,
        "created": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**9, n), unit="s"),
        "tags": [["alpha", "beta"]] * n,
        "note": [f"{i:08d} " + "lorem ipsum dolor sit amet " * 4 for i in range(start, start + n)],
    })  # fmt: skip


def fill(db, n: int) -> None:
    resource_ = db.create_resource("records", attributes=ATTRIBUTES, partitions={"byCountry": {"fields": {"country": "string"}}})
    step = 20_000
    for start in range(0, n, step):
        resource_.insert_frame(frame(start, min(step, n - start)), progress=False)


def rss_now() -> float:
    """The process's resident set now, MiB."""
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss() -> float:
    """The process's peak resident set since the last ``reset_peak``, MiB (VmHWM)."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # Linux: reset the peak RSS mark
        return True
    except OSError:
        return False


def child(case: str, url: str, n: int, out: str, batch_size: int) -> dict:
    """One case in this (fresh) process; returns its figures."""
    import gc

    import pyarrow as pa

    import s3db_nb
    from s3db_nb.sql import default_partition_by, filesystem, write_table

    db = s3db_nb.connect(url)
    if url.startswith("memory://"):
        fill(db, n)
    gc.collect()
    before = rss_now()
    import pyarrow.dataset as pads
    import pyarrow.parquet  # noqa: F401

    pads.write_dataset(pa.table({"x": [1]}), f"{out}-warmup", format="parquet", existing_data_behavior="overwrite_or_ignore")
    shutil.rmtree(f"{out}-warmup", ignore_errors=True)
    gc.collect()
    base = rss_now()
    figures: dict = {"case": case, "libraries_mib": base - before, "peak_reset": reset_peak()}
    base = rss_now()
    figures["base_rss_mib"] = base
    started = time.perf_counter()
    if case == "whole":
        records = db.resource("records")
        table = records.to_arrow(secrets=False, progress=False, snapshot=False)
        figures["arrow_table_mib"] = table.nbytes / 2**20
        fs, folder, _ = filesystem(out, db)
        files = write_table(fs, f"{folder}/records", table, "parquet", default_partition_by(records))
        figures["rows"] = sum(f["rows"] for f in files)
        del table
    elif case == "stream":
        manifest = db.export(out, resources=["records"], batch_size=batch_size, progress=False)
        figures["rows"] = manifest["resources"]["records"]["rows"]
    elif case == "dataset":  # the same batches through pyarrow.dataset.write_dataset, for comparison
        reader = db.resource("records").iter_batches(batch_size, secrets=False, snapshot=False)
        pads.write_dataset(reader, out, format="parquet", partitioning=["country"], partitioning_flavor="hive")
    figures["seconds"] = time.perf_counter() - started
    figures["peak_rss_mib"] = peak_rss()
    figures["above_base_mib"] = figures["peak_rss_mib"] - base
    db.disconnect()
    return figures


def run_case(case: str, url: str, n: int, out: str, batch_size: int) -> dict:
    args = [sys.executable, __file__, "--child", case, "--url", url, "--n", str(n), "--out", out, "--batch-size", str(batch_size)]
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", default="200000", help="records; a comma-separated list runs each size")
    parser.add_argument("--backend", choices=("memory", "file"), default="memory")
    parser.add_argument("--batch-size", type=int, default=10_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.url, int(args.n), args.out, args.batch_size)))
        return

    sizes = [int(part) for part in args.n.split(",")]
    rows: list[tuple[int, dict]] = []
    for n in sizes:
        work = Path(tempfile.mkdtemp(prefix="s3db-bench-export-"))
        try:
            if args.backend == "file":
                url = f"file://{work}/store"
                import s3db_nb

                started = time.perf_counter()
                with s3db_nb.connect(url) as db:
                    fill(db, n)
                print(f"filled {n:,} records on file:// in {time.perf_counter() - started:.0f} s", flush=True)
            else:
                url = "memory://bench-export"
            for case in ("whole", "stream", "dataset"):
                rows.append((n, run_case(case, url, n, str(work / f"out-{case}"), args.batch_size)))
        finally:
            shutil.rmtree(work, ignore_errors=True)

    print(
        f"\nexport of records ({args.backend}://, batch {args.batch_size:,}), Hive-partitioned by 20 values; "
        f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.1f}"
    )
    first = rows[0][1]
    print(f"(loading pyarrow.dataset/parquet and warming Arrow's I/O pool: {first['libraries_mib']:.0f} MiB, in every base)")
    if not first["peak_reset"]:
        print("(the peak-RSS mark could not be reset: peaks include the process's set-up)")
    print(f"\n{'N':>9}  {'case':<7} {'seconds':>8} {'base MiB':>9} {'peak above base MiB':>20}  notes")
    for n, r in rows:
        notes = f"the whole Arrow table: {r['arrow_table_mib']:.0f} MiB" if "arrow_table_mib" in r else ""
        print(f"{n:>9,}  {r['case']:<7} {r['seconds']:>8.1f} {r['base_rss_mib']:>9.0f} {r['above_base_mib']:>20.0f}  {notes}")
    print()
    for n in sizes:
        whole, stream = (next(r for m, r in rows if m == n and r["case"] == case)["above_base_mib"] for case in ("whole", "stream"))
        print(f"N={n:,}: streaming peak above base / whole-table peak above base = {stream / max(whole, 1e-9):.2f}")


if __name__ == "__main__":
    main()
