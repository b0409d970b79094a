"""Snapshots against their targets (issue #26), in one run on a file:// store.

``run(n)`` returns the figures (``make bench`` imports it); the CLI prints them with each ratio
beside its threshold:

* after one insert, the next GROUP BY ≤ 3 × (DuckDB on the exported Parquet + the resource's LIST);
* the same query again with nothing changed ≤ 1.5 × DuckDB on the export;
* the first (cold) query, which builds the snapshot, no slower than the pre-snapshot path (≤ 1.0 ×,
  reported with the measured ratio since both are dominated by the same GETs);
* the peak memory a refresh after one insert allocates, next to the snapshot's size.

The machine may be shared, so each ratio compares figures taken side by side: the cold pair is
run ``repeats`` times (the snapshot dropped in between; the first pair, whose pre-snapshot query
also pays the process's first-use costs, is reported apart) and the repeated query alternates
with the DuckDB query it is compared with. Ratios are of medians.

    .venv/bin/python benchmarks/bench_snapshots.py --n 100000 [--store PATH]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from typing import Any

QUERY = "SELECT country, kind, count(*) AS n, sum(amount) AS total, avg(n) AS mean FROM events GROUP BY 1, 2 ORDER BY 1, 2"
TARGETS = {"after_insert": 3.0, "repeated": 1.5, "cold": 1.0}


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def _store(root: str, n: int) -> None:
    """``n`` events in ``root`` (kept: building 100 000 records takes a while)."""
    import numpy as np
    import pandas as pd

    import s3db_nb

    db = s3db_nb.connect(f"file://{root}")
    if "events" in db.resources:  # a reused store (earlier runs add a few records)
        return
    events = db.create_resource(
        "events",
        attributes={"country": "string", "kind": "string", "amount": "number", "n": "number|integer"},
        partitions={"byCountry": {"fields": {"country": "string"}}},
    )
    rng = np.random.default_rng(1)
    frame = pd.DataFrame(
        {
            "id": [f"e{i:06d}" for i in range(n)],
            "country": rng.choice(["BR", "PT", "US", "FR"], n),
            "kind": rng.choice(["a", "b", "c"], n),
            "amount": rng.random(n).round(3),
            "n": rng.integers(0, 1000, n),
        }
    )
    events.insert_frame(frame)
    db.disconnect()


def run(n: int = 100_000, store: str | None = None, repeats: int = 3) -> dict[str, Any]:
    """Measure the targets on a file:// store of ``n`` records; returns figures and ratios."""
    import duckdb
    import pyarrow as pa

    import s3db_nb

    work = tempfile.mkdtemp(prefix="bench-snapshots-")
    root = store or os.path.join(work, "store")
    _store(root, n)
    db = s3db_nb.connect(f"file://{root}")
    db.snapshots.configure(snapshot_dir=os.path.join(work, "snapshots"))
    events = db.resource("events")
    figures: dict[str, Any] = {"n": n}
    run_id = os.urandom(4).hex()  # fresh ids on every run of a reused store

    pre_cold, snapshot_cold = [], []
    for i in range(repeats):
        if i:
            events.drop_snapshot()  # the next query builds it again
        pre_cold.append(_timed(lambda: db.sql(QUERY, snapshot=False, refresh=True).fetchall())[0])
        snapshot_cold.append(_timed(lambda: db.sql(QUERY).fetchall())[0])
    figures["first_cold_ratio"] = snapshot_cold[0] / pre_cold[0]
    figures["cold_pre_snapshot_s"] = statistics.median(pre_cold)
    figures["cold_snapshot_s"] = statistics.median(snapshot_cold)

    export = os.path.join(work, "events.parquet")
    events.to_parquet(export)
    con = duckdb.connect()
    con.sql("SET enable_progress_bar=false")
    export_query = QUERY.replace("FROM events", f"FROM read_parquet('{export}')")
    con.sql(export_query).fetchall()  # its first run opens the file

    after, lists = [], []
    for i in range(repeats):
        events.insert({"id": f"{run_id}-new{i}", "country": "BR", "kind": "a", "amount": 1.0, "n": 1})
        lists.append(_timed(lambda: sum(1 for _ in db.client.list(events.engine.data_prefix())))[0])
        events.insert({"id": f"{run_id}-new{i}b", "country": "PT", "kind": "b", "amount": 2.0, "n": 2})
        after.append(_timed(lambda: db.sql(QUERY).fetchall())[0])
    figures["list_s"] = statistics.median(lists)
    figures["after_insert_s"] = statistics.median(after)

    time.sleep(0.3)  # past the racy window: the data folder's time stamp can vouch for "unchanged"
    db.sql(QUERY)
    duckdb_times, repeated = [], []
    for _ in range(15):  # alternating, so both see the same load
        duckdb_times.append(_timed(lambda: con.sql(export_query).fetchall())[0])
        repeated.append(_timed(lambda: db.sql(QUERY).fetchall())[0])
    figures["duckdb_export_s"] = statistics.median(duckdb_times)
    figures["repeated_s"] = statistics.median(repeated)

    events.insert({"id": f"{run_id}-" + "refresh", "country": "US", "kind": "c", "amount": 3.0, "n": 3})
    figures["refresh_after_one_insert_s"], _ = _timed(events.refresh_snapshot)
    events.insert({"id": f"{run_id}-" + "rss", "country": "US", "kind": "c", "amount": 3.0, "n": 3})
    arrow_before = pa.total_allocated_bytes()
    tracemalloc.start()  # slows Python down: the time above is measured without it
    events.refresh_snapshot()
    _, python_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    figures["refresh_peak_python_mib"] = python_peak / 2**20
    figures["refresh_arrow_growth_mib"] = max(0, pa.total_allocated_bytes() - arrow_before) / 2**20
    figures["snapshot_table_mib"] = db.snapshots.snapshot(events).table.nbytes / 2**20
    try:
        import resource as _resource

        figures["process_max_rss_mib"] = _resource.getrusage(_resource.RUSAGE_SELF).ru_maxrss / 1024
    except ImportError:  # pragma: no cover - Windows
        pass

    figures["ratios"] = {
        "after_insert": figures["after_insert_s"] / (figures["duckdb_export_s"] + figures["list_s"]),
        "repeated": figures["repeated_s"] / figures["duckdb_export_s"],
        "cold": figures["cold_snapshot_s"] / figures["cold_pre_snapshot_s"],
    }
    figures["met"] = {k: figures["ratios"][k] <= limit for k, limit in TARGETS.items()}
    db.disconnect()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000, help="records in the resource (default 100 000)")
    parser.add_argument("--store", help="a file:// folder to reuse between runs (built when missing)")
    args = parser.parse_args()
    f = run(args.n, args.store)
    print(f"snapshots benchmark, file://, n={f['n']}")
    print(
        f"  cold query: {f['cold_snapshot_s']:.2f} s with snapshot build, {f['cold_pre_snapshot_s']:.2f} s before snapshots "
        f"(medians; the process's first pair: {f['first_cold_ratio']:.2f}x)"
    )
    print(f"  DuckDB on the Parquet export: {f['duckdb_export_s'] * 1000:.1f} ms; LIST of the data prefix: {f['list_s'] * 1000:.1f} ms")
    print(f"  after one insert: {f['after_insert_s'] * 1000:.1f} ms; nothing changed: {f['repeated_s'] * 1000:.1f} ms")
    print(
        f"  refresh after one insert: {f['refresh_after_one_insert_s'] * 1000:.1f} ms, python peak {f['refresh_peak_python_mib']:.1f} MiB, "
        f"arrow growth {f['refresh_arrow_growth_mib']:.1f} MiB (snapshot table {f['snapshot_table_mib']:.1f} MiB, "
        f"process max RSS {f.get('process_max_rss_mib', 0):.0f} MiB)"
    )
    labels = {
        "after_insert": "after insert / (DuckDB + LIST)",
        "repeated": "nothing changed / DuckDB",
        "cold": "cold / pre-snapshot cold",
    }
    for key, label in labels.items():
        mark = "met" if f["met"][key] else "NOT met"
        print(f"  {label:34s} {f['ratios'][key]:6.2f}x   threshold {TARGETS[key]:.1f}x   {mark}")


if __name__ == "__main__":
    main()
