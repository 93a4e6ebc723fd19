"""API load: profile reads with 50 concurrent clients and uploads with 10 concurrent tablets.

Starts `spira serve` on a free localhost port over a freshly seeded demo database (its own temp folder),
drives it with httpx from this process, and reports p50/p99 latency, requests/s and errors. Bounded in
count and time; localhost only. Usage: python bench/api_load.py [--reads 2000] [--uploads 60] [--write]

The mixed load runs twice in the same run: once on a server whose upload route does its CPU work on
the event loop (the route as it was: a bench-only hook, ``ON_LOOP_HOOK``, calls it inline), once as
it is (in FastAPI's thread pool), so the read p99 under uploads is compared on the same machine
state.
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


#: Bench-only baseline: a ``sitecustomize`` that makes FastAPI call the upload route inline on the
#: event loop instead of in its thread pool (how the route ran while it was ``async``). Loaded by
#: every server process (``--workers`` spawns) through PYTHONPATH.
ON_LOOP_HOOK = """
import fastapi.routing as _routing

_pooled = _routing.run_in_threadpool


async def _upload_inline(func, *args, **kwargs):
    if getattr(kwargs.get("function"), "__name__", "") == "upload_photo":
        return func(*args, **kwargs)
    return await _pooled(func, *args, **kwargs)


_routing.run_in_threadpool = _upload_inline
"""


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


#: What went wrong in failed reads (printed with the results).
FAILURES: list[str] = []


async def _keep_alive_client(
    host: str,
    port: int,
    requests: list[bytes],
    results: list,
    warmup: int = 0,
    window: list[float] | None = None,
) -> None:
    """One client on one keep-alive connection: sends each request, reads the whole answer
    (status line, headers, Content-Length body), records (seconds, status). The first
    ``warmup`` requests are sent and read but not recorded (connection set-up, the server
    process's first look-ups); ``window`` gets the start of its first timed request and the
    end of its last."""
    reader, writer = await asyncio.open_connection(host, port)

    async def one(raw: bytes) -> int:
        writer.write(raw)
        status = int((await reader.readline()).split()[1])
        length = 0
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        return status

    t = time.perf_counter()
    try:
        for raw in requests[:warmup]:
            await one(raw)
        if window is not None:
            window.append(time.perf_counter())
        for raw in requests:
            t = time.perf_counter()
            status = await one(raw)
            results.append((time.perf_counter() - t, status))
    except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as err:
        results.append((time.perf_counter() - t, 0))
        FAILURES.append(repr(err))
    finally:
        if window is not None:
            window.append(time.perf_counter())
        writer.close()


async def read_load(
    port: int, headers: dict, unit_ids: list[int], n: int, concurrency: int, warmup: int = 5
):
    """``n`` profile reads from ``concurrency`` clients, each on its own keep-alive connection
    after ``warmup`` untimed reads (steady state: the clients are principals with their pages
    open, not fifty connections opened in the same millisecond on a server that has not yet
    looked up their account). Requests per second are over the span from the first timed read
    to the last answer.

    A minimal HTTP/1.1 client on asyncio streams rather than httpx: httpx costs about 5 ms of CPU
    per request, which on a 2-core machine shared with the server capped this benchmark at ~180
    requests/s even for /health; this one lets /health reach ~2,400/s, so what is measured is
    the server."""
    auth = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    raws = [
        f"GET /api/units/{unit_ids[i % len(unit_ids)]}/profile HTTP/1.1\r\n"
        f"Host: 127.0.0.1\r\n{auth}\r\n".encode()
        for i in range(n)
    ]
    results: list = []
    window: list[float] = []
    FAILURES.clear()
    await asyncio.gather(
        *(
            _keep_alive_client("127.0.0.1", port, raws[i::concurrency], results, warmup, window)
            for i in range(concurrency)
        ),
    )
    return results, max(window) - min(window)


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
        **({"failures": sorted(set(FAILURES))[:3]} if FAILURES else {}),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--uploads", type=int, default=60)
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="server processes (default: cores)"
    )
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
            "--password-stdin",
            "--role",
            "admin",
        ],
        env=env,
        check=True,
        capture_output=True,
        input=b"load-test-pass\n",
    )
    g: dict = {}

    def run_server(on_loop: bool, phases: bool):
        """Serve, warm every unit up, run the plain phases (``phases``) and the mixed one."""
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        server_env = dict(env)
        if on_loop:
            hook = tmp / "on-loop-hook"
            hook.mkdir(exist_ok=True)
            (hook / "sitecustomize.py").write_text(ON_LOOP_HOOK)
            server_env["PYTHONPATH"] = os.pathsep.join(
                [str(hook), *filter(None, [env.get("PYTHONPATH")])]
            )
        server = subprocess.Popen(
            [spira, "serve", "--port", str(port), "--workers", str(args.workers)],
            env=server_env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        r = u = None
        try:
            wait_healthy(base)
            tok = httpx.post(
                f"{base}/api/token", data={"username": "loadtest", "password": "load-test-pass"}
            ).json()["access_token"]
            headers = {"Authorization": f"Bearer {tok}"}
            units = httpx.get(f"{base}/api/units", headers=headers).json()
            unit_ids = [u["id"] for u in units]
            for unit_id in unit_ids:  # steady state: each unit's first read builds its figures
                first = httpx.get(
                    f"{base}/api/units/{unit_id}/profile", headers=headers, timeout=120
                )
                print(
                    f"first read of unit {unit_id}: {first.elapsed.total_seconds() * 1000:.0f} ms"
                )
            g.update(units[0]["groups"][0])
            if phases:
                reads, wall = asyncio.run(read_load(port, headers, unit_ids, args.reads, 50))
                r = summarise(reads, wall)
                print(f"profile reads, 50 clients: {r}", flush=True)
                photos = [
                    make_photo(k % 5, 50_000 + k, megapixels=2.0) for k in range(args.uploads)
                ]
                ups, wall = asyncio.run(
                    upload_load(base, headers, unit_ids[0], g["id"], g["age_band"], photos, 10)
                )
                u = summarise(ups, wall)
                print(f"uploads, 10 tablets: {u}", flush=True)
            # new photos each run (the same bytes would be answered as duplicates)
            seed = 70_000 if on_loop else 60_000

            async def mixed():
                # both at once: 10 tablets uploading while 50 clients read profiles
                more = [make_photo(k % 5, seed + k, megapixels=2.0) for k in range(args.uploads)]
                return await asyncio.gather(
                    read_load(port, headers, unit_ids, args.reads, 50),
                    upload_load(base, headers, unit_ids[0], g["id"], g["age_band"], more, 10),
                )

            (mixed_reads, mixed_read_wall), (mixed_ups, mixed_up_wall) = asyncio.run(mixed())
            mr, mu = summarise(mixed_reads, mixed_read_wall), summarise(mixed_ups, mixed_up_wall)
            label = "upload on the event loop" if on_loop else "upload in the thread pool"
            print(f"mixed ({label}): reads {mr}, uploads {mu}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)
        return r, u, mr, mu

    _, _, lr, lu = run_server(on_loop=True, phases=False)
    r, u, mr, mu = run_server(on_loop=False, phases=True)
    assert r is not None and u is not None
    body = f"""Server: `spira serve --workers {args.workers}` (uvicorn processes, SQLite, one background worker draining at a time), demo database of 8 units, each unit read once before timing (a unit's first read builds its figures: 50–600 ms). The load comes from one client process on the same 2 cores: reads from a minimal keep-alive HTTP/1.1 client on asyncio streams (each of the 50 clients makes 5 untimed reads first, then the timed ones; requests/s over the timed span), uploads from httpx.

How the read path got here (same machine, 2026-12-02): 7 reads/s, p99 19.5 s when every read recomputed the unit's bootstrap and committed its own audit row; 344 reads/s, p99 398 ms with the figures memoised and audit rows group-committed, but still three ORM look-ups and two thread hops per read, and full garbage collections of the whole heap (110–165 ms pauses, about one a second per process). Now a read is answered on the event loop: the account is a snapshot kept for `SPIRA_PROFILE_CHECK_SECONDS` (dropped by any write in the process), the answer is memoised with the profile build, the audit row is awaited on the loop, the start-up heap is frozen out of the collector's view (`gc.freeze`), and after a rebuild readers get the unit's last answer while one refresh recomputes it. The mixed load was 163 reads/s, p99 1.2 s before this round.

| load | n | errors | p50 ms | p99 ms | per second |
|---|---|---|---|---|---|
| profile reads, 50 concurrent clients | {r["n"]} | {r["errors"]} | {r["p50_ms"]:.1f} | {r["p99_ms"]:.1f} | {r["per_s"]:.1f} requests/s |
| uploads of 2-MP JPEGs, 10 concurrent tablets | {u["n"]} | {u["errors"]} | {u["p50_ms"]:.1f} | {u["p99_ms"]:.1f} | {u["per_s"]:.1f} uploads/s |
| mixed: profile reads while the tablets upload | {mr["n"]} | {mr["errors"]} | {mr["p50_ms"]:.1f} | {mr["p99_ms"]:.1f} | {mr["per_s"]:.1f} requests/s |
| mixed: uploads while the clients read | {mu["n"]} | {mu["errors"]} | {mu["p50_ms"]:.1f} | {mu["p99_ms"]:.1f} | {mu["per_s"]:.1f} uploads/s |

The upload route's CPU work (decoding, face scan, storage, commit) runs in FastAPI's thread pool, off
the event loop that answers the reads. Same run, the same mixed load against a server whose upload
route does that work on the event loop (as it did while the route was `async`; a bench-only hook):

| mixed load, upload route | reads p50 ms | reads p99 ms | reads/s | uploads p99 ms | uploads/s |
|---|---|---|---|---|---|
| on the event loop (before) | {lr["p50_ms"]:.1f} | {lr["p99_ms"]:.1f} | {lr["per_s"]:.1f} | {lu["p99_ms"]:.1f} | {lu["per_s"]:.1f} |
| in the thread pool (now) | {mr["p50_ms"]:.1f} | {mr["p99_ms"]:.1f} | {mr["per_s"]:.1f} | {mu["p99_ms"]:.1f} | {mu["per_s"]:.1f} |
| ratio now / before | {mr["p50_ms"] / lr["p50_ms"]:.2f} | {mr["p99_ms"] / lr["p99_ms"]:.2f} | {mr["per_s"] / lr["per_s"]:.2f} | {mu["p99_ms"] / lu["p99_ms"]:.2f} | {mu["per_s"] / lu["per_s"]:.2f} |

The test `tests/security/test_load.py` runs the same mix small (16 uploads from 4 tablets, 200 reads
from 10 clients, two server processes, on SQLite and on PostgreSQL) and fails on any error, lost or
doubled upload, or upload left unprocessed; its figures are kept in `test-artifacts/load-test.json`.

Target on 2 CPU cores: p99 ≤ 100 ms for profile reads at 50 concurrent clients, zero errors.
"""
    print(body)
    if args.write:
        write_section("API load", body, keep=("Reading",))


if __name__ == "__main__":
    main()
