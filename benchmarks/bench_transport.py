"""Transport benchmark: boto3 (configured as ``S3Client`` configures it) against obstore, on
record-shaped requests, to see whether a leaner client moves the S3 ceiling (issue #5).

    .venv/bin/pip install -e ".[s3-fast]"             # obstore (in the dev extra too)
    .venv/bin/python benchmarks/bench_transport.py                 # N=5000, 2 rounds, SeaweedFS
    .venv/bin/python benchmarks/bench_transport.py --n 2000 --rounds 3 --moto

A record is one PUT of 8 ``x-amz-meta-*`` headers with an empty body, sent with
``If-None-Match: *``, and one GET that reads metadata and body. For N objects and a pool of 16,
each transport does the N PUTs, then the N GETs, and checks that every GET returned the
metadata that was put. Transports:

* ``boto3``: the client ``S3Client`` builds (adaptive retries, path style, checksums only when
  required), called from 16 threads.
* ``obstore``: ``obstore.put``/``obstore.get`` (sync API, the Rust object_store crate) from 16
  threads.
* ``obstore-async``: ``put_async``/``get_async`` from 16 asyncio workers on one event loop.

Client CPU is ``os.times()`` user+system of this process. SeaweedFS runs in its own process,
so that is the client's alone; its CPU is read from ``/proc`` and shown next to it. Moto runs
in this process, so with ``--moto`` the CPU column counts client and server together. The
order of the transports rotates from round to round, since the server slows as it fills.
Results are printed and written to ``benchmarks/results/`` (git-ignored).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_bulk import KEY, SECRET, Servers, cpu  # noqa: E402 - needs HERE on sys.path

Meta = dict[str, str]
Fetched = tuple[str, Meta, bytes]
#: response attributes obstore reports next to the user metadata; not part of a record
OBSTORE_STANDARD_ATTRIBUTES = {
    "Content-Disposition",
    "Content-Encoding",
    "Content-Language",
    "Content-Type",
    "Cache-Control",
    "Storage-Class",
}


def record_metadata(i: int) -> Meta:
    """The metadata of one record the way s3db stores it: short keys, encoded values."""
    return {"_v": "1", "1": f"name {i}", "2": f"{i % 90:x}", "3": "BR", "4": f"0.{i:04d}", "5": "1", "6": "lxk8s9a", "7": "a|b"}


def server_cpu(pid: int | None) -> float | None:
    """CPU seconds (user+system, all threads) of another process, from /proc; None when unknown."""
    if pid is None:
        return None
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- transports ----------------------------------------------------------------------------
# Each one returns (put, get, runner): put((key, meta)) and get(key) -> (key, meta, body) are
# sync functions or coroutines, and runner(op, items, parallelism) runs op over every item.


def run_threads(op: Callable[..., Any], items: Iterable[Any], parallelism: int) -> list[Any]:
    with ThreadPoolExecutor(parallelism) as pool:
        return list(pool.map(op, items))


def run_asyncio(op: Callable[..., Awaitable[Any]], items: Iterable[Any], parallelism: int) -> list[Any]:
    """``parallelism`` workers pulling from one iterator: a semaphore of 16 without N tasks."""

    async def main() -> list[Any]:
        pending = iter(items)
        out: list[Any] = []

        async def worker() -> None:
            for item in pending:
                out.append(await op(item))

        await asyncio.gather(*(worker() for _ in range(parallelism)))
        return out

    return asyncio.run(main())


def boto3_transport(endpoint: str, bucket: str, parallelism: int) -> tuple[Callable, Callable, Callable]:
    """The boto3 client of ``S3Client`` itself, so its Config is the one s3db_nb uses."""
    from s3db_nb.clients.s3 import S3Client

    client = S3Client(
        bucket, endpoint_url=endpoint, region="us-east-1", access_key_id=KEY, secret_access_key=SECRET, parallelism=parallelism
    ).client

    def put(item: tuple[str, Meta]) -> None:
        key, meta = item
        client.put_object(Bucket=bucket, Key=key, Body=b"", Metadata=meta, IfNoneMatch="*")

    def get(key: str) -> Fetched:
        resp = client.get_object(Bucket=bucket, Key=key)
        with resp["Body"] as stream:
            return key, resp["Metadata"], stream.read()

    return put, get, run_threads


def obstore_store(endpoint: str, bucket: str) -> Any:
    """Path-style (object_store's default), plain http allowed, static keys, SigV4."""
    from obstore.store import S3Store

    return S3Store(
        bucket, endpoint=endpoint, region="us-east-1", access_key_id=KEY, secret_access_key=SECRET, client_options={"allow_http": True}
    )


def user_metadata(attributes: dict[str, str]) -> Meta:
    return {k: v for k, v in attributes.items() if k not in OBSTORE_STANDARD_ATTRIBUTES}


def obstore_transport(endpoint: str, bucket: str, parallelism: int) -> tuple[Callable, Callable, Callable]:
    import obstore

    store = obstore_store(endpoint, bucket)

    def put(item: tuple[str, Meta]) -> None:
        key, meta = item
        obstore.put(store, key, b"", attributes=meta, mode="create")

    def get(key: str) -> Fetched:
        result = obstore.get(store, key)
        return key, user_metadata(result.attributes), bytes(result.bytes())

    return put, get, run_threads


def obstore_async_transport(endpoint: str, bucket: str, parallelism: int) -> tuple[Callable, Callable, Callable]:
    import obstore

    store = obstore_store(endpoint, bucket)

    async def put(item: tuple[str, Meta]) -> None:
        key, meta = item
        await obstore.put_async(store, key, b"", attributes=meta, mode="create")

    async def get(key: str) -> Fetched:
        result = await obstore.get_async(store, key)
        return key, user_metadata(result.attributes), bytes(await result.bytes_async())

    return put, get, run_asyncio


TRANSPORTS = {"boto3": boto3_transport, "obstore": obstore_transport, "obstore-async": obstore_async_transport}


# -- one measurement -----------------------------------------------------------------------


def measure(name: str, endpoint: str, bucket: str, prefix: str, n: int, parallelism: int, server_pid: int | None) -> dict[str, Any]:
    """N PUTs then N GETs of the same keys with one transport; raises when a GET disagrees."""
    put, get, runner = TRANSPORTS[name](endpoint, bucket, parallelism)
    # warm-up: load models, open the pool's connections (not timed)
    runner(put, [(f"{prefix}/warmup/{i}", record_metadata(i)) for i in range(4 * parallelism)], parallelism)
    keys = [f"{prefix}/resource=users/data/id=u{i:07d}" for i in range(n)]
    row: dict[str, Any] = {"transport": name, "n": n}
    fetched: list[Fetched] = []
    for op, fn, items in (("put", put, [(k, record_metadata(i)) for i, k in enumerate(keys)]), ("get", get, keys)):
        s0, c0, t0 = server_cpu(server_pid), cpu(), time.perf_counter()
        fetched = runner(fn, items, parallelism)  # the GETs' results stay for the check below
        wall, client = time.perf_counter() - t0, cpu() - c0
        s1 = server_cpu(server_pid)
        row[f"{op}_s"], row[f"{op}_cpu_s"] = wall, client
        row[f"{op}_server_cpu_s"] = s1 - s0 if s0 is not None and s1 is not None else None
    expected = {k: record_metadata(i) for i, k in enumerate(keys)}
    wrong = [key for key, meta, body in fetched if meta != expected[key] or body != b""]
    if len(fetched) != n or wrong:
        raise AssertionError(f"{name}: {len(fetched)} GETs for {n} keys, {len(wrong)} with other metadata, e.g. {wrong[:3]}")
    return row


def report(rows: list[dict[str, Any]], parallelism: int) -> str:
    lines = [
        f"{'server':<8}{'round':>6} {'transport':<14}| {'PUT/s':>7}{'cpu ms':>8}{'srv ms':>8} | {'GET/s':>7}{'cpu ms':>8}{'srv ms':>8}"
        f" | {'obstore/boto3: PUT/s':>20}{'cpu':>6}{'GET/s':>7}{'cpu':>6}"
    ]  # fmt: skip
    base = {(r["server"], r["round"]): r for r in rows if r["transport"] == "boto3"}

    def ms(r: dict[str, Any], key: str) -> str:
        return f"{1000 * r[key] / r['n']:8.2f}" if r.get(key) is not None else f"{'-':>8}"

    for r in rows:
        b = base.get((r["server"], r["round"]))
        ratios = ""
        if b is not None and r is not b:
            ratios = (f" | {b['put_s'] / r['put_s']:>20.2f}{r['put_cpu_s'] / b['put_cpu_s']:>6.2f}"
                      f"{b['get_s'] / r['get_s']:>7.2f}{r['get_cpu_s'] / b['get_cpu_s']:>6.2f}")  # fmt: skip
        lines.append(
            f"{r['server']:<8}{r['round']:>6} {r['transport']:<14}| {r['n'] / r['put_s']:>7.0f}{ms(r, 'put_cpu_s')}{ms(r, 'put_server_cpu_s')}"
            f" | {r['n'] / r['get_s']:>7.0f}{ms(r, 'get_cpu_s')}{ms(r, 'get_server_cpu_s')}{ratios}"
        )  # fmt: skip
    lines.append(f"cpu ms: client CPU per request (os.times of this process); srv ms: SeaweedFS CPU per request; parallelism {parallelism}")
    if any(r["server"] == "moto" for r in rows):
        lines.append("moto runs in this process: its cpu ms is client + server")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000, help="objects per transport and round")
    parser.add_argument("--rounds", type=int, default=2, help="rounds; the transport order rotates each round")
    parser.add_argument("--parallelism", type=int, default=16)
    parser.add_argument("--transports", default=",".join(TRANSPORTS), help=f"comma-separated, of {', '.join(TRANSPORTS)}")
    parser.add_argument("--moto", action="store_true", help="also run against moto (in process)")
    args = parser.parse_args()
    names = [t for t in args.transports.split(",") if t]
    unknown = set(names) - set(TRANSPORTS)
    if unknown:
        parser.error(f"unknown transports: {', '.join(sorted(unknown))}")

    servers = Servers()
    rows: list[dict[str, Any]] = []
    stamp = time.strftime("%Y%m%dT%H%M%S")
    try:
        targets: list[tuple[str, str, str, int | None]] = []
        weed = servers.start_seaweed()
        if isinstance(weed, str):
            print(f"skipped SeaweedFS: {weed}", file=sys.stderr)
        else:
            targets.append(("seaweed", *weed, servers.weed.pid))
        if args.moto:
            targets.append(("moto", *servers.start_moto(), None))
        for server, endpoint, bucket, pid in targets:
            for rnd in range(args.rounds):
                order = names[rnd % len(names) :] + names[: rnd % len(names)]
                for name in order:
                    started = time.perf_counter()
                    row = measure(name, endpoint, bucket, f"bench-transport-{stamp}/{rnd}/{name}", args.n, args.parallelism, pid)
                    rows.append({"server": server, "round": rnd, **row})
                    print(f"  {server} round {rnd} {name} done in {time.perf_counter() - started:.1f}s", file=sys.stderr)
    finally:
        servers.stop()
    rows.sort(key=lambda r: (r["server"], r["round"], names.index(r["transport"])))
    text = report(rows, args.parallelism)
    header = (
        f"python {platform.python_version()}, {os.cpu_count()} CPUs, N={args.n}, obstore {version('obstore')}, boto3 {version('boto3')}"
    )
    print(header)
    print(text)
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"bench_transport-{stamp}.json").write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    (out / f"bench_transport-{stamp}.txt").write_text(header + "\n" + text + "\n")


if __name__ == "__main__":
    main()
