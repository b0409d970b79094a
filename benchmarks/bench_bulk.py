"""Bulk I/O benchmark: ``insert_frame`` and ``to_pandas`` next to the raw ceiling, in one run.

    .venv/bin/python benchmarks/bench_bulk.py                      # the issue's sizes
    .venv/bin/python benchmarks/bench_bulk.py --file 1000,10000 --memory 10000 --s3 1000

Each case (backend, N) runs in a fresh subprocess so its peak RSS is its own. The ceiling is
measured in the same run with the same pool size: for S3 servers a raw boto3 loop doing the
same PUTs (same keys' metadata and bodies, under another prefix) and GETs; for ``file://``
raw reads/writes of the same data files and sidecars, on the pool and in one thread (the faster
counts), plus the same writes done crash-safely (sidecar via temp + rename), as FileClient must. ``memory://`` has no ceiling to compare with. On moto and SeaweedFS, the real s3db.js (``tests/compat/node``) also inserts and reads the same records
(``insertMany`` / ``getAll``) when Node is installed. Results go to ``benchmarks/results/`` (git-ignored) and are printed as a table.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

KEY, SECRET = "testing", "testing"
#: set (by ``make bench``) to leave each case's files for the caller to remove at the end. On
#: ext4 without a journal, creating a file skips every free inode deleted in the last 1-6
#: minutes, one buffer lookup each: right after a case removed its 300 000 files, the next
#: case's file:// writes ran up to 8x slower, by how many of them landed near the deleted ones
KEEP_FILES = "S3DB_BENCH_KEEP_FILES"


def frame(n: int):
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(0)
    return pd.DataFrame({
        "id": [f"u{i:07d}" for i in range(n)],
        "name": [f"name {i}" for i in range(n)],
        "age": rng.integers(0, 90, n),
        "country": rng.choice(["BR", "PT", "US", "DE"], n),
        "score": rng.random(n),
        "active": rng.random(n) > 0.5,
        "created": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(rng.integers(0, 10**9, n), unit="s"),
        "tags": [["a", "b"]] * n,
    })  # fmt: skip


def cpu() -> float:
    t = os.times()
    return t.user + t.system


def timed(fn):
    c0, t0 = cpu(), time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0, cpu() - c0


def best_of(repeat: int, fn):
    """``timed(fn)`` run ``repeat`` times; the fastest run (a shared machine only ever adds time)."""
    best: tuple[float, float] | None = None
    out = None
    for _ in range(max(1, repeat)):
        out = None  # the previous result goes before the next is built: the peak RSS is one read's
        out, seconds, cpu_s = timed(fn)
        if best is None or seconds < best[0]:
            best = (seconds, cpu_s)
    assert best is not None
    return out, best[0], best[1]


# -- ceilings ------------------------------------------------------------------------------


def s3_ceiling(endpoint: str, bucket: str, prefix: str, keys: list[str], parallelism: int, boto3_loop: bool = True) -> dict[str, float]:
    """Raw GETs and PUTs of the same objects through boto3 (unless ``boto3_loop`` is False) and obstore."""
    if not boto3_loop:
        return obstore_ceiling(endpoint, bucket, prefix, keys, None, parallelism)
    import boto3
    from botocore.config import Config

    client = boto3.client(
        "s3", endpoint_url=endpoint, aws_access_key_id=KEY, aws_secret_access_key=SECRET, region_name="us-east-1",
        config=Config(max_pool_connections=parallelism, s3={"addressing_style": "path"},
                      request_checksum_calculation="when_required", response_checksum_validation="when_required"),
    )  # fmt: skip
    full = [f"{prefix}/{k}" for k in keys]

    def get(key):
        r = client.get_object(Bucket=bucket, Key=key)
        return r["Metadata"], r["Body"].read(), r.get("ContentType")

    with ThreadPoolExecutor(parallelism) as pool:
        objects, get_s, get_cpu = timed(lambda: list(pool.map(get, full)))

        def put(item):
            key, (meta, body, ctype) = item
            extra = {"ContentType": ctype} if ctype else {}
            client.put_object(Bucket=bucket, Key=f"{prefix}-raw/{key}", Body=body, Metadata=meta, IfNoneMatch="*", **extra)

        _, put_s, put_cpu = timed(lambda: list(pool.map(put, zip(keys, objects))))
    out = {"get_s": get_s, "put_s": put_s, "get_cpu_s": get_cpu, "put_cpu_s": put_cpu}
    out.update(obstore_ceiling(endpoint, bucket, prefix, keys, objects, parallelism))
    return out


def obstore_ceiling(endpoint: str, bucket: str, prefix: str, keys: list[str], objects: list | None, parallelism: int) -> dict[str, float]:
    """The same GETs and PUTs through obstore (the ``s3-fast`` transport), when it is installed.

    The PUTs write ``objects`` (metadata, body, content type), or what the GETs read when None."""
    try:
        import obstore
    except ImportError:
        return {}
    store = obstore_store(endpoint, bucket)
    get_all = obstore_get_loop(store, prefix, keys)
    standard = {"content-type", "content-disposition", "content-encoding", "content-language", "cache-control", "storage-class"}

    def put(item):
        key, (meta, body, ctype) = item
        attributes = {**meta, **({"Content-Type": ctype} if ctype else {})}
        obstore.put(store, f"{prefix}-obstore/{key}", body, attributes=attributes, mode="create")

    with ThreadPoolExecutor(parallelism) as pool:
        fetched, get_s, get_cpu = timed(lambda: get_all(pool))
        if objects is None:
            objects = [
                ({k: v for k, v in a.items() if k.lower() not in standard}, body, a.get("Content-Type")) for a, body in fetched
            ]  # fmt: skip
        _, put_s, put_cpu = timed(lambda: list(pool.map(put, zip(keys, objects))))
    return {"obstore_get_s": get_s, "obstore_put_s": put_s, "obstore_get_cpu_s": get_cpu, "obstore_put_cpu_s": put_cpu}


def obstore_store(endpoint: str, bucket: str):
    """An obstore ``S3Store`` for the bench bucket, configured as the raw loops use it."""
    from obstore.store import S3Store

    return S3Store(
        bucket, endpoint=endpoint, region="us-east-1", access_key_id=KEY, secret_access_key=SECRET, client_options={"allow_http": True}
    )


def obstore_get_loop(store, prefix: str, keys: list[str]) -> Callable[[ThreadPoolExecutor], list]:
    """The raw obstore GET loop: every key's attributes and body, fetched on the given pool."""
    import obstore

    full = [f"{prefix}/{key}" for key in keys]

    def get(key):
        result = obstore.get(store, key)
        return result.attributes, bytes(result.bytes())

    return lambda pool: list(pool.map(get, full))


def obstore_head_loop(store, prefix: str, keys: list[str]) -> Callable[[ThreadPoolExecutor], list]:
    """The raw obstore HEAD loop: every key's attributes (what s3db_nb's bulk read sends for a
    record whose HEAD proves its body, ``write_tokens.body_from_head``)."""
    import obstore

    full = [f"{prefix}/{key}" for key in keys]
    return lambda pool: list(pool.map(lambda key: obstore.get(store, key, options={"head": True}).attributes, full))


def file_ceiling(root: Path, keys: list[str], parallelism: int, repeat: int = 1) -> dict[str, float]:
    """Raw reads of each object's data file and sidecar, then raw writes of both elsewhere.

    Done twice, on a pool of ``parallelism`` threads and in one thread, and the faster of
    the two is the ceiling: s3db_nb runs file:// work in one thread, and on a small machine
    either can win.
    """
    from s3db_nb.clients.file import SIDECAR_SUFFIX

    paths = [root / k for k in keys]

    def read(path):
        with open(path, "rb") as fh:
            body = fh.read()
        with open(str(path) + SIDECAR_SUFFIX, "rb") as fh:
            side = fh.read()
        return body, side

    def write_all(out: Path, run) -> None:
        out.mkdir(parents=True, exist_ok=True)

        def write(item):
            i, (body, side) = item
            target = out / f"id={i}"
            with open(target, "wb") as fh:
                fh.write(body)
            with open(str(target) + SIDECAR_SUFFIX, "wb") as fh:
                fh.write(side)

        run(write, enumerate(blobs))

    result: dict[str, float] = {}
    with ThreadPoolExecutor(parallelism) as pool:
        blobs, pool_get_s, pool_get_cpu = best_of(repeat, lambda: list(pool.map(read, paths)))
        _, pool_put_s, pool_put_cpu = timed(lambda: write_all(root.parent / "raw-pool", lambda f, xs: list(pool.map(f, xs))))
    os.sync()  # as before every timed read: the writeback of the writes just done is not these reads'
    blobs, one_get_s, one_get_cpu = best_of(repeat, lambda: [read(p) for p in paths])
    _, one_put_s, one_put_cpu = timed(lambda: write_all(root.parent / "raw-one", lambda f, xs: [f(x) for x in xs]))
    for op, pooled, single in (
        ("get", (pool_get_s, pool_get_cpu), (one_get_s, one_get_cpu)),
        ("put", (pool_put_s, pool_put_cpu), (one_put_s, one_put_cpu)),
    ):
        best = min(pooled, single)
        result.update({f"{op}_s": best[0], f"{op}_cpu_s": best[1], f"{op}_pool_s": pooled[0], f"{op}_one_thread_s": single[0]})
    return result


def read_objects(root: Path, keys: list[str]) -> list[tuple[bytes, bytes]]:
    """Each object's data file and sidecar, as stored under ``root``."""
    from s3db_nb.clients.file import SIDECAR_SUFFIX

    out = []
    for key in keys:
        with open(root / key, "rb") as fh, open(str(root / key) + SIDECAR_SUFFIX, "rb") as side:
            out.append((fh.read(), side.read()))
    return out


def write_safely(out: Path, blobs: list[tuple[bytes, bytes]]) -> None:
    """The same two files per object, written so that no reader or crash ever sees half a
    sidecar: the body in place (a new object), the sidecar to a temp file renamed over its
    name. That is the least a store whose objects are never half-written does per PUT."""
    from s3db_nb.clients.file import SIDECAR_SUFFIX

    out.mkdir(parents=True, exist_ok=True)
    for i, (body, side) in enumerate(blobs):
        target = str(out / f"id={i}")
        with open(target, "wb") as fh:
            fh.write(body)
        with open(target + ".tmp", "wb") as fh:
            fh.write(side)
        os.replace(target + ".tmp", target + SIDECAR_SUFFIX)


# -- one case (in a subprocess) -----------------------------------------------------------


def run_case(
    backend: str, n: int, endpoint: str | None, bucket: str | None, parallelism: int, repeat: int = 1, boto3_loop: bool = True
) -> dict:
    """One (backend, N) case in this process: s3db_nb's insert and read, then the raw ceiling
    (``boto3_loop=False`` leaves out the slow boto3 loop on S3 servers: obstore's only)."""
    import s3db_nb
    import s3db_nb.frames  # noqa: F401 - loaded on first use (~25 ms): a one-time cost, not per record

    tmp = Path(tempfile.mkdtemp(prefix="s3db-bench-"))
    prefix = f"bench-{backend}-{n}-{os.getpid()}"
    try:
        if backend == "file":
            url = f"file://{tmp}/store"
        elif backend == "memory":
            url = f"memory://{prefix}"
        else:
            url = endpoint.replace("http://", f"http://{KEY}:{SECRET}@") + f"/{bucket}/{prefix}"
        db = s3db_nb.connect(url, parallelism=parallelism)
        transport = getattr(db.client, "transport", None)
        data = frame(n)
        attributes = {
            "name": "string", "age": "number|integer", "country": "string", "score": "number",
            "active": "boolean", "created": "datetime", "tags": "array|items:string",
        }  # fmt: skip
        users = db.create_resource("users", attributes=attributes)
        if backend == "file":
            os.sync()  # the disk's writeback of earlier cases is not this insert's
        _, insert_s, insert_cpu = timed(lambda: users.insert_frame(data, progress=False))
        safe_writes: list[float] = []
        if backend == "file":
            # one timed write is at the mercy of the disk's writeback (single runs spread from
            # 0.12 to 2.9 of the raw loop): each side writes `repeat` times, alternating, each
            # after os.sync(), into a new folder or resource, and the best of each is kept
            blobs = read_objects(tmp / "store", [users.engine.key(i) for i in data["id"]])
            for round_ in range(max(1, repeat)):
                if round_:
                    again = db.create_resource(f"users{round_}", attributes=attributes)
                    os.sync()
                    _, seconds, cpu_s = timed(lambda r=again: r.insert_frame(data, progress=False))
                    if seconds < insert_s:
                        insert_s, insert_cpu = seconds, cpu_s
                os.sync()
                safe_writes.append(timed(lambda out=tmp / f"raw-safe-{round_}": write_safely(out, blobs))[1])
            del blobs
        # reads change nothing, so they are timed `repeat` times and the best kept; on S3 servers
        # each s3db_nb read is followed by the raw obstore GET loop it is compared with, so both
        # sides meet the server in the same states (the first read comes right after the insert)
        local = backend in ("memory", "file")
        keys = [users.engine.key(i) for i in data["id"]]
        raw_get = raw_head = None
        if not local and importlib.util.find_spec("obstore") is not None:
            store = obstore_store(endpoint, bucket)
            raw_get, raw_head = obstore_get_loop(store, prefix, keys), obstore_head_loop(store, prefix, keys)
        raw_gets: list[tuple[float, float]] = []
        raw_heads: list[tuple[float, float]] = []
        best_read: tuple[float, float] | None = None
        with ThreadPoolExecutor(parallelism) as pool:
            for _ in range(max(1, repeat)):
                df = None  # the previous result goes before the next is built: the peak RSS is one read's
                if backend == "file":
                    os.sync()  # the writeback of the writes above is not this read's (the raw reads come after one too)
                df, seconds, cpu_s = timed(lambda: users.to_pandas(progress=False))
                if best_read is None or seconds < best_read[0]:
                    best_read = (seconds, cpu_s)
                if raw_get is not None and raw_head is not None:
                    raw_gets.append(timed(lambda: raw_get(pool))[1:])
                    raw_heads.append(timed(lambda: raw_head(pool))[1:])
        read_s, read_cpu = best_read
        assert len(df) == n, (len(df), n)
        table_bytes = users.to_arrow(progress=False).nbytes if n <= 10_000 else int(df.memory_usage(deep=True).sum())
        # the peak before the raw ceiling loops (file:// and memory://: s3db_nb's own; S3 servers
        # ran the raw GET loop between reads, and no target is set on their RSS)
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if backend == "file":
            os.sync()
            ceiling = file_ceiling(tmp / "store", keys, parallelism, repeat)
            ceiling["safe_put_s"] = min(safe_writes)
        elif backend == "memory":
            ceiling = {}
        else:
            ceiling = s3_ceiling(endpoint, bucket, prefix, keys, parallelism, boto3_loop)
            if raw_gets:  # the GET loops timed beside s3db_nb's reads: the best of them
                ceiling["obstore_get_s"], ceiling["obstore_get_cpu_s"] = min(raw_gets)
                ceiling["obstore_head_s"], ceiling["obstore_head_cpu_s"] = min(raw_heads)
        db.disconnect()
        return {
            "backend": backend, "n": n, "parallelism": parallelism,
            "insert_s": insert_s, "insert_cpu_s": insert_cpu, "read_s": read_s, "read_cpu_s": read_cpu,
            "table_bytes": table_bytes, "peak_rss_bytes": peak_rss, "transport": transport,
            **{f"raw_{k}": v for k, v in ceiling.items()},
        }  # fmt: skip
    finally:
        if not os.environ.get(KEEP_FILES):
            shutil.rmtree(tmp, ignore_errors=True)


def case_in_subprocess(
    backend: str, n: int, endpoint: str | None, bucket: str | None, parallelism: int = 16, repeat: int = 3, boto3_loop: bool = True
) -> dict | str:
    """``run_case`` in a fresh Python process, so the peak RSS is the case's own: its figures
    (a dict), or why it failed (a str)."""
    args = [sys.executable, __file__, "--parallelism", str(parallelism), "--repeat", str(repeat)]
    if not boto3_loop:
        args.append("--no-boto3")
    args += ["--case", backend, str(n), endpoint or "-", bucket or "-"]
    proc = subprocess.run(args, capture_output=True, text=True)
    if proc.returncode != 0:
        return f"failed: {proc.stderr.strip().splitlines()[-1:]}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


def node_case(endpoint: str, bucket: str, n: int, parallelism: int) -> dict | str:
    """The real s3db.js inserting and reading the same records on the same endpoint (a dict), or
    why it could not run (a str). Node's peak RSS is not measured."""
    node_dir = HERE.parent / "tests" / "compat" / "node"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (node_dir / "node_modules" / "s3db.js").exists():
        return f"s3db.js is not installed: run `npm install` in {node_dir} (make test does)"
    resolve = subprocess.run(["node", "--input-type=module", "-e", "console.log(import.meta.resolve('s3db.js'))"],
                             cwd=node_dir, capture_output=True, text=True)  # fmt: skip
    if resolve.returncode != 0:
        return f"cannot resolve s3db.js: {resolve.stderr.strip()[-300:]}"
    prefix = f"bench-node-{n}-{os.getpid()}"
    connection = endpoint.replace("http://", f"http://{KEY}:{SECRET}@") + f"/{bucket}/{prefix}"
    env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1")
    proc = subprocess.run(["node", "--no-warnings", str(HERE / "s3dbjs_bench.mjs"), resolve.stdout.strip(), connection, str(n), str(parallelism)],
                          capture_output=True, text=True, env=env, timeout=3600)  # fmt: skip
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        return f"s3db.js failed: {(proc.stderr or proc.stdout).strip()[-300:]}"
    out = json.loads(lines[-1])
    if out["read_count"] != n:
        return f"s3db.js getAll returned {out['read_count']} of {n} records"
    return out


# -- servers and the report ---------------------------------------------------------------


class Servers:
    def __init__(self) -> None:
        self.moto = None
        self.weed: subprocess.Popen | None = None
        self.weed_dir: str | None = None

    def start_moto(self) -> tuple[str, str]:
        os.environ.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET, AWS_DEFAULT_REGION="us-east-1")
        import logging

        from moto.server import ThreadedMotoServer

        from conftest import free_ports, s3_client_for

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request otherwise

        self.moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_ports(1)[0], verbose=False)
        self.moto.start()
        endpoint = f"http://127.0.0.1:{self.moto.get_host_and_port()[1]}"
        s3_client_for(endpoint, "bench").ensure_bucket()
        return endpoint, "bench"

    def start_seaweed(self) -> tuple[str, str] | str:
        """Same flags as the ``seaweed_server`` fixture in tests/conftest.py."""
        from conftest import _wait_http, find_weed, free_ports, s3_client_for

        weed = find_weed()
        if weed is None:
            return "SeaweedFS 'weed' binary not found"
        self.weed_dir = tempfile.mkdtemp(prefix="s3db-weed-")
        names = [
            "master.port",
            "master.port.grpc",
            "volume.port",
            "volume.port.grpc",
            "filer.port",
            "filer.port.grpc",
            "s3.port",
            "s3.port.grpc",
            "admin.port",
            "admin.port.grpc",
        ]
        ports = dict(zip(names, free_ports(len(names))))
        args = [
            weed, "mini", f"-dir={self.weed_dir}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-admin.ui=false", "-webdav=false",
            "-master.telemetry=false", "-s3.port.iceberg=0", "-s3.port.lance=0",
            f"-s3.localSocket={self.weed_dir}/s3.sock", f"-filer.localSocket={self.weed_dir}/filer.sock",
        ] + [f"-{k}={v}" for k, v in ports.items()]  # fmt: skip
        env = dict(os.environ, AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET)
        self.weed = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=self.weed_dir)
        endpoint = f"http://127.0.0.1:{ports['s3.port']}"
        if not _wait_http(endpoint + "/", 60, self.weed):
            return "SeaweedFS did not start"
        client = s3_client_for(endpoint, "bench")
        for _ in range(100):
            try:
                client.ensure_bucket()
                client.put("warmup", b"x")
                return endpoint, "bench"
            except Exception:  # noqa: BLE001 - the filer may still be starting
                time.sleep(0.1)
        return "SeaweedFS S3 gateway not usable"

    def stop(self) -> None:
        if self.moto is not None:
            self.moto.stop()
        if self.weed is not None:
            self.weed.terminate()
            try:
                self.weed.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.weed.kill()
        if self.weed_dir:
            shutil.rmtree(self.weed_dir, ignore_errors=True)


def sizes(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def report(results: list[dict], skipped: list[str], node: list[dict] | None = None) -> str:
    lines = [
        f"{'backend':<9}{'N':>8} | {'insert rec/s':>12}{'raw PUT/s':>10}{'ratio':>7} | {'read rec/s':>11}{'raw GET/s':>10}{'ratio':>7}"
        f" | {'cpu ms/rec w':>12}{'r':>6} | {'RSS MB':>7}{'Arrow MB':>9}{'RSS ok':>7}",
    ]  # fmt: skip
    for r in results:
        n = r["n"]
        ins, rd = n / r["insert_s"], n / r["read_s"]
        raw_put = n / r["raw_put_s"] if "raw_put_s" in r else None
        raw_get = n / r["raw_get_s"] if "raw_get_s" in r else None
        rss, arrow = r["peak_rss_bytes"] / 2**20, r["table_bytes"] / 2**20
        lines.append(
            f"{r['backend']:<9}{n:>8} | {ins:>12.0f}{raw_put or float('nan'):>10.0f}{(ins / raw_put) if raw_put else float('nan'):>7.2f}"
            f" | {rd:>11.0f}{raw_get or float('nan'):>10.0f}{(rd / raw_get) if raw_get else float('nan'):>7.2f}"
            f" | {1000 * r['insert_cpu_s'] / n:>12.2f}{1000 * r['read_cpu_s'] / n:>6.2f} | {rss:>7.0f}{arrow:>9.1f}{'yes' if rss <= 2 * arrow + 200 else 'NO':>7}"
        )  # fmt: skip

    def section(title: str, needs: str, line: Callable[[dict, int], str]) -> None:
        rows = [r for r in results if needs in r]
        if rows:
            lines.extend(["", title])
            lines.extend(f"  {r['backend']:<9}{r['n']:>8}: {line(r, r['n'])}" for r in rows)

    def safe_line(r: dict, n: int) -> str:
        put = n / r["raw_safe_put_s"]
        return (
            f"PUT/s {put:.0f} (insert {n / r['insert_s'] / put:.2f}; plain raw writes / these {r['raw_safe_put_s'] / r['raw_put_s']:.2f})"
        )

    def obstore_line(r: dict, n: int) -> str:
        put, get = n / r["raw_obstore_put_s"], n / r["raw_obstore_get_s"]
        return f"PUT/s {put:.0f} (insert {n / r['insert_s'] / put:.2f}), GET/s {get:.0f} (read {n / r['read_s'] / get:.2f})"

    section(
        "file:// writes against raw writes that never leave half an object (body, sidecar via temp + rename):", "raw_safe_put_s", safe_line
    )
    section(
        "S3 ceiling through obstore (s3db_nb's transport when the s3-fast extra is installed), and s3db_nb / it:",
        "raw_obstore_put_s",
        obstore_line,
    )
    by_backend: dict[str, list[dict]] = {}
    for r in results:
        by_backend.setdefault(r["backend"], []).append(r)
    lines.append("")
    lines.append("per-record time, largest N / smallest N (target <= 1.2):")
    for backend, rows in by_backend.items():
        rows = sorted(rows, key=lambda r: r["n"])
        if len(rows) > 1:
            small, big = rows[0], rows[-1]
            w = (big["insert_s"] / big["n"]) / (small["insert_s"] / small["n"])
            rd = (big["read_s"] / big["n"]) / (small["read_s"] / small["n"])
            lines.append(f"  {backend:<9} N={small['n']}→{big['n']}: insert {w:.2f}, read {rd:.2f}")
    if node:
        ours = {(r["backend"], r["n"]): r for r in results}
        lines.append("")
        lines.append("s3db.js 21.6.2 (insertMany / getAll) on the same server, and s3db_nb / s3db.js:")
        for r in node:
            mine = ours.get((r["backend"], r["n"]))
            ins, rd = r["n"] / r["insert_s"], r["n"] / r["read_s"]
            vs = (
                f"  s3db_nb/s3db.js insert {(r['n'] / mine['insert_s']) / ins:.2f}, read {(r['n'] / mine['read_s']) / rd:.2f}"
                if mine
                else ""
            )
            lines.append(f"  {r['backend']:<9} N={r['n']}: insert {ins:.0f} rec/s, read {rd:.0f} rec/s;{vs}")
    for reason in skipped:
        lines.append(f"skipped: {reason}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--s3", default="1000,10000", help="sizes for the moto and SeaweedFS servers")
    parser.add_argument("--file", default="1000,10000,100000", help="sizes for file://")
    parser.add_argument("--memory", default="1000,100000", help="sizes for memory://")
    parser.add_argument("--moto", default=None, help="sizes for moto only (default: --s3)")
    parser.add_argument("--seaweed", default=None, help="sizes for SeaweedFS only (default: --s3)")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--no-node", action="store_true", help="skip the s3db.js comparison on the S3 servers")
    parser.add_argument("--no-boto3", action="store_true", help="skip the raw boto3 loop on the S3 servers (obstore's only)")
    parser.add_argument(
        "--repeat",
        type=int,
        default=3,
        help=(
            "reads are timed this many times, the best counts (file://: the raw reads too, and the insert and the crash-safe raw "
            "writes alternate as often, each after os.sync(); S3: each read followed by the raw obstore GET loop)"
        ),
    )
    parser.add_argument("--case", nargs=4, metavar=("BACKEND", "N", "ENDPOINT", "BUCKET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case:
        backend, n, endpoint, bucket = args.case
        endpoint_or_none, bucket_or_none = (None if endpoint == "-" else endpoint), (None if bucket == "-" else bucket)
        print(json.dumps(run_case(backend, int(n), endpoint_or_none, bucket_or_none, args.parallelism, args.repeat, not args.no_boto3)))
        return

    plan = [("memory", n) for n in sizes(args.memory)] + [("file", n) for n in sizes(args.file)]
    plan += [("moto", n) for n in sizes(args.moto if args.moto is not None else args.s3)]
    plan += [("seaweed", n) for n in sizes(args.seaweed if args.seaweed is not None else args.s3)]
    servers = Servers()
    results: list[dict] = []
    skipped: list[str] = []
    node: list[dict] = []
    try:
        endpoints: dict[str, tuple[str, str] | str] = {}
        if any(b == "moto" for b, _ in plan):
            endpoints["moto"] = servers.start_moto()
        if any(b == "seaweed" for b, _ in plan):
            endpoints["seaweed"] = servers.start_seaweed()
        for backend, n in plan:
            endpoint, bucket = "-", "-"
            if backend in endpoints:
                if isinstance(endpoints[backend], str):
                    skipped.append(f"{backend} N={n}: {endpoints[backend]}")
                    continue
                endpoint, bucket = endpoints[backend]
            started = time.perf_counter()
            outcome = case_in_subprocess(backend, n, endpoint, bucket, args.parallelism, args.repeat, not args.no_boto3)
            if isinstance(outcome, str):
                skipped.append(f"{backend} N={n}: {outcome}")
                continue
            results.append(outcome)
            print(f"  {backend} N={n} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
            if backend in ("moto", "seaweed") and not args.no_node:
                started = time.perf_counter()
                outcome = node_case(endpoint, bucket, n, args.parallelism)
                if isinstance(outcome, str):
                    skipped.append(f"s3db.js on {backend} N={n}: {outcome}")
                else:
                    node.append({**outcome, "backend": backend})
                    print(f"  s3db.js on {backend} N={n} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        servers.stop()
    text = report(results, skipped, node)
    print(f"python {platform.python_version()}, {os.cpu_count()} CPUs, parallelism {args.parallelism}")
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    (out / f"bench_bulk-{stamp}.json").write_text(json.dumps({"results": results, "node": node, "skipped": skipped}, indent=2))
    (out / f"bench_bulk-{stamp}.txt").write_text(text + "\n")


if __name__ == "__main__":
    main()
