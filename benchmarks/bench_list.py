"""LIST benchmark: ``count()`` of N keys on SeaweedFS through each transport and through s3db.js, in one run.

    .venv/bin/python benchmarks/bench_list.py              # N = 10 000, best of 5
    .venv/bin/python benchmarks/bench_list.py --n 2500 --repeat 3

Writes N empty objects under ``resource=users/data/`` once, then times the same ListObjectsV2
pages (1 000 keys each) counted by ``S3Client.count`` with ``transport="obstore"`` and
``transport="boto3"``, and by the real s3db.js ``resource.count()`` (``tests/compat/node``) when
Node is installed. Prints wall times (min and median) and the ratios to s3db.js.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from bench_bulk import KEY, SECRET, Servers  # noqa: E402

PREFIX = "resource=users/data/"
NODE_COUNT = """
const [entry, connectionString, repeat] = process.argv.slice(1);
const { S3db } = await import(entry);
const db = new S3db({ connectionString, logLevel: 'silent', clientOptions: { httpClientOptions: { useReckerHandler: false } } });
await db.connect();
const users = await db.createResource({ name: 'users', attributes: { name: 'string' } });
const times = []; let n = 0;
for (let i = 0; i < Number(repeat); i++) {
  const started = performance.now();
  n = await users.count();
  times.push((performance.now() - started) / 1000);
}
console.log(JSON.stringify({ n, times }));
process.exit(0);
"""


def client(endpoint: str, bucket: str, prefix: str, transport: str):
    from s3db_nb.clients.s3 import S3Client

    return S3Client(
        bucket, prefix, endpoint_url=endpoint, region="us-east-1", access_key_id=KEY, secret_access_key=SECRET, transport=transport
    )


def fill(endpoint: str, bucket: str, prefix: str, n: int) -> None:
    writer = client(endpoint, bucket, prefix, "auto")
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: writer.put(f"{PREFIX}id=u{i:07d}", b""), range(n)))
    writer.close()


def time_count(endpoint: str, bucket: str, prefix: str, transport: str, n: int, repeat: int) -> list[float]:
    reader = client(endpoint, bucket, prefix, transport)
    reader.count(PREFIX)  # warm the connection pool
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        counted = reader.count(PREFIX)
        times.append(time.perf_counter() - started)
        assert counted == n, (transport, counted, n)
    reader.close()
    return times


def time_node(endpoint: str, bucket: str, prefix: str, n: int, repeat: int) -> list[float] | str:
    import json

    node_dir = HERE.parent / "tests" / "compat" / "node"
    if shutil.which("node") is None:
        return "node is not installed"
    if not (node_dir / "node_modules" / "s3db.js").exists():
        return f"s3db.js is not installed: run `npm install` in {node_dir}"
    resolve = subprocess.run(
        ["node", "--input-type=module", "-e", "console.log(import.meta.resolve('s3db.js'))"], cwd=node_dir, capture_output=True, text=True
    )
    connection = endpoint.replace("http://", f"http://{KEY}:{SECRET}@") + f"/{bucket}/{prefix}"
    proc = subprocess.run(
        ["node", "--no-warnings", "--input-type=module", "-e", NODE_COUNT, resolve.stdout.strip(), connection, str(repeat + 1)],
        cwd=node_dir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    if proc.returncode != 0:
        return "s3db.js failed: " + proc.stderr.strip()[-400:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    if result["n"] != n:
        return f"s3db.js counted {result['n']}, not {n}"
    return result["times"][1:]  # the first run warms its connections


def run(endpoint: str, bucket: str, n: int, repeat: int, prefix: str | None = None) -> dict[str, list[float] | str]:
    """Fill ``n`` keys once, then time ``count()`` ``repeat`` times per client: seconds per run
    for each client (a list), or why a client could not run (a str). ``make bench`` imports it."""
    prefix = prefix or f"bench-list-{n}"
    fill(endpoint, bucket, prefix, n)
    return {
        "s3db_nb obstore": time_count(endpoint, bucket, prefix, "obstore", n, repeat),
        "s3db_nb boto3": time_count(endpoint, bucket, prefix, "boto3", n, repeat),
        "s3db.js 21.6.2": time_node(endpoint, bucket, prefix, n, repeat),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    servers = Servers()
    try:
        started = servers.start_seaweed()
        if isinstance(started, str):
            sys.exit(f"cannot run: {started}")
        endpoint, bucket = started
        rows = run(endpoint, bucket, args.n, args.repeat)
    finally:
        servers.stop()
    base = rows["s3db.js 21.6.2"]
    print(f"count() of {args.n} keys on SeaweedFS, {args.repeat} runs each ({-(-args.n // 1000)} LIST pages per count)")
    print(f"{'client':<18}{'min s':>9}{'median s':>10}{'min / s3db.js':>15}")
    for name, times in rows.items():
        if isinstance(times, str):
            print(f"{name:<18}  skipped: {times}")
            continue
        ratio = f"{min(times) / min(base):.2f}x" if not isinstance(base, str) else "-"
        print(f"{name:<18}{min(times):>9.3f}{statistics.median(times):>10.3f}{ratio:>15}")


if __name__ == "__main__":
    main()
