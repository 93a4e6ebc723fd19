"""API load: profile reads with 50 concurrent clients and uploads with 10 concurrent tablets.

Starts `spira serve` on a free localhost port over a freshly seeded demo database (its own temp folder),
drives it with httpx from this process, and reports p50/p99 latency, requests/s and errors. Bounded in
count and time; localhost only. Usage: python bench/api_load.py [--reads 2000] [--uploads 60] [--write]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_healthy(url: str, timeout: float = 120) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"server at {url} did not become healthy in {timeout} s")


async def _timed(client, method: str, url: str, **kw) -> tuple[float, int]:
    t = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
        return time.perf_counter() - t, r.status_code
    except Exception:  # noqa: BLE001 - any failure is an error in the tally
        return time.perf_counter() - t, 0


async def read_load(base: str, headers: dict, unit_ids: list[int], n: int, concurrency: int):
    import httpx

    sem = asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base, headers=headers, timeout=30, limits=limits
    ) as client:

        async def one(i: int):
            async with sem:
                return await _timed(
                    client, "GET", f"/api/units/{unit_ids[i % len(unit_ids)]}/profile"
                )

        t = time.perf_counter()
        results = await asyncio.gather(*(one(i) for i in range(n)))
        return results, time.perf_counter() - t


async def upload_load(
    base: str,
    headers: dict,
    unit_id: int,
    group_id: int,
    band: str,
    photos: list[bytes],
    concurrency: int,
):
    import httpx

    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=60) as client:

        async def one(data: bytes):
            async with sem:
                return await _timed(
                    client,
                    "POST",
                    "/api/photos",
                    headers={"Idempotency-Key": uuid.uuid4().hex},
                    files={"file": ("p.jpg", data, "image/jpeg")},
                    data={
                        "unit_id": unit_id,
                        "group_id": group_id,
                        "activity": "teckning",
                        "age_band": band,
                    },
                )

        t = time.perf_counter()
        results = await asyncio.gather(*(one(p) for p in photos))
        return results, time.perf_counter() - t


def summarise(results, wall: float) -> dict:
    lat = np.array([r[0] for r in results]) * 1000
    ok = sum(1 for r in results if 200 <= r[1] < 300)
    return {
        "n": len(results),
        "errors": len(results) - ok,
        "p50_ms": float(np.percentile(lat, 50)),
        "p99_ms": float(np.percentile(lat, 99)),
        "per_s": len(results) / wall,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    import httpx

    from bench.common import write_section
    from vision.synthetic import make_photo

    tmp = Path(tempfile.mkdtemp(prefix="spira-load-"))
    env = {**os.environ, "SPIRA_VAR_DIR": str(tmp / "var"), "SPIRA_DEVICE": "cpu"}
    spira = str(Path(sys.executable).with_name("spira"))
    print("seeding the demo database ...", flush=True)
    subprocess.run(
        [spira, "demo", "--no-serve", "--photos-per-term", "6"],
        env=env,
        check=True,
        capture_output=True,
    )
    subprocess.run(
        [
            spira,
            "users",
            "add",
            "--username",
            "loadtest",
            "--password",
            "load-test-pass",
            "--role",
            "admin",
        ],
        env=env,
        check=True,
        capture_output=True,
    )
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [spira, "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_healthy(base)
        tok = httpx.post(
            f"{base}/api/token", data={"username": "loadtest", "password": "load-test-pass"}
        ).json()["access_token"]
        headers = {"Authorization": f"Bearer {tok}"}
        units = httpx.get(f"{base}/api/units", headers=headers).json()
        unit_ids = [u["id"] for u in units]
        httpx.get(
            f"{base}/api/units/{unit_ids[0]}/profile", headers=headers, timeout=120
        )  # warm the cache
        reads, wall = asyncio.run(read_load(base, headers, unit_ids, args.reads, 50))
        r = summarise(reads, wall)
        print(f"profile reads, 50 clients: {r}", flush=True)
        photos = [make_photo(k % 5, 50_000 + k, megapixels=2.0) for k in range(args.uploads)]
        g = units[0]["groups"][0]
        ups, wall = asyncio.run(
            upload_load(base, headers, unit_ids[0], g["id"], g["age_band"], photos, 10)
        )
        u = summarise(ups, wall)
        print(f"uploads, 10 tablets: {u}", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    body = f"""Server: `spira serve` (one uvicorn process, SQLite, background worker on), demo database of 8 units.

| load | n | errors | p50 ms | p99 ms | per second |
|---|---|---|---|---|---|
| profile reads, 50 concurrent clients | {r["n"]} | {r["errors"]} | {r["p50_ms"]:.1f} | {r["p99_ms"]:.1f} | {r["per_s"]:.1f} requests/s |
| uploads of 2-MP JPEGs, 10 concurrent tablets | {u["n"]} | {u["errors"]} | {u["p50_ms"]:.1f} | {u["p99_ms"]:.1f} | {u["per_s"]:.1f} uploads/s |

Target on 2 CPU cores: p99 ≤ 100 ms for profile reads at 50 concurrent clients, zero errors.
"""
    print(body)
    if args.write:
        write_section("API load", body)


if __name__ == "__main__":
    main()
