"""The measurements behind docs/sizing.md: ``python -m tests.k8s_sizing`` (about a minute and a half
on the 2-core development machine).

``cdas bench redis`` reports Redis memory per prompt for one CDAS run, measured before its first
step. Sizing a deployment needs more than that, so this script measures, against a private
redis-server (Debian package, persistence off, as ``cdas bench redis`` starts it) and a real
``cdas serve`` process:

1. Redis memory per prompt for every strategy (``INFO memory`` used_memory after the run is
   registered, and after a result for every prompt, minus before, over N), with count ids
   ("0".."N-1") and with explicit string ids;
2. what a run's steps add: used_memory every few hundred steps of a math12k-shaped run
   (N = 12,000, B = 1,024) for 1,400 steps. A run keeps the batches and applied sets of its latest
   1,024 steps and the statistics of every step, so the growth per step has two slopes;
3. for a 10^6-prompt run: registration's peak (used_memory_peak, the Lua script's working set) and
   the snapshot's size (``GET .../snapshot``, bounded by ``--max-body-mb`` when restored);
4. the CPU one full step (next_batch of 1,024 + report_results of 1,024) costs the coordinator
   process (utime + stime from /proc) and Redis (``INFO cpu``), over REST and over gRPC, at
   N = 10^6 and N = 12,000, and the coordinator's peak resident memory (VmHWM) after those steps,
   a /metrics scrape, a snapshot of the 10^6-prompt run over REST and its restore: what the
   Deployment's requests and limits are set from;
5. what one /metrics scrape costs with 500 runs whose reports the scraped process served (each
   replica reads every run's state from Redis at every scrape, and exports the counters of the
   reports it served): wall time, coordinator and Redis CPU, text size, samples per run.

Every figure is a difference on one server in one run; absolute CPU times move with the machine.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
import numpy as np
import redis

import cdas
from cdas.bench.core import CHUNK, Pupils, _results
from cdas.bench.redis_store import private_redis
from cdas.client.grpc import GrpcClient
from cdas.client.rest import RestClient
from cdas.service.process import serve_process

TICKS = os.sysconf("SC_CLK_TCK")
"""Clock ticks per second, the unit of utime and stime in /proc/<pid>/stat."""


def used_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory"])


def peak_memory(client: redis.Redis) -> int:
    return int(client.info("memory")["used_memory_peak"])


def redis_cpu(client: redis.Redis) -> float:
    """Seconds of CPU the server has used (user + system, main thread and the rest)."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def process_cpu(pid: int) -> float:
    """Seconds of CPU process ``pid`` has used (user + system)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def process_memory(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak resident set) of ``pid``, in bytes."""
    found: dict[str, int] = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                found[name] = int(value.split()[0]) * 1024
    return found


def load_all(coord: Any, run: str, n: int, pupils: Pupils) -> None:
    """A result for every prompt (step 0), in chunks: the state after a full warm-up epoch."""
    for start in range(0, n, CHUNK):
        idx = np.arange(start, min(n, start + CHUNK))
        coord.report_results(run, 0, _results([str(i) for i in idx], pupils.correct(idx)))


@dataclass
class PromptMemory:
    strategy: str
    ids: str
    n: int
    registered: float
    loaded: float


def prompt_memory(
    coord: cdas.Coordinator, client: redis.Redis, strategy: str, n: int, explicit: bool
) -> PromptMemory:
    """Bytes of Redis memory per prompt for one run, after registering and after loading."""
    client.flushdb()
    before = used_memory(client)
    # the curriculum orders prompts by a label (a difficulty level, 1-5 in MATH): one f64 each
    labels = [float(1 + i % 5) for i in range(n)] if strategy == "curriculum" else None
    if explicit:
        # 16 hex digits: the content hashes cdas-openrlhf registers when a dataset has no id column
        ids = [f"{i:016x}" for i in range(n)]
        coord.put_run("m", strategy=strategy, prompts=ids, labels=labels)
        registered = used_memory(client)
        pupils = Pupils(n, 0)
        for start in range(0, n, CHUNK):
            idx = np.arange(start, min(n, start + CHUNK))
            names = ids[int(idx[0]) : int(idx[-1]) + 1]
            coord.report_results("m", 0, _results(names, pupils.correct(idx)))
    else:
        coord.put_run("m", strategy=strategy, prompts=n, labels=labels)
        registered = used_memory(client)
        load_all(coord, "m", n, Pupils(n, 0))
    loaded = used_memory(client)
    label = "explicit, 16 B" if explicit else "count"
    return PromptMemory(strategy, label, n, (registered - before) / n, (loaded - before) / n)


def step_memory(
    coord: cdas.Coordinator, client: redis.Redis, n: int, size: int, steps: int, every: int
) -> list[tuple[int, int]]:
    """(step, used_memory - before) every ``every`` steps of one CDAS run."""
    client.flushdb()
    before = used_memory(client)
    coord.put_run("s", prompts=n)
    pupils = Pupils(n, 1)
    points = [(0, used_memory(client) - before)]
    for step in range(1, steps + 1):
        batch = coord.next_batch("s", step, size)
        idx = np.array(batch.prompt_ids, dtype=np.int64)
        coord.report_results("s", step, _results(batch.prompt_ids, pupils.correct(idx)))
        if step % every == 0:
            points.append((step, used_memory(client) - before))
    return points


@dataclass
class DoorCost:
    door: str
    service_ms: float
    redis_ms: float
    wall_ms: float


def door_cost(
    client: Any, pid: int, server: redis.Redis, run: str, pupils: Pupils, first: int, steps: int
) -> DoorCost:
    """CPU per full step in the coordinator process and in Redis, over one client."""
    n_steps = 0

    def one(step: int) -> None:
        batch = client.next_batch(run, step, 1024)
        idx = np.array(batch.prompt_ids, dtype=np.int64)
        client.report_results(run, step, _results(batch.prompt_ids, pupils.correct(idx)))

    for step in range(first, first + 10):  # warm-up: connections, caches
        one(step)
    service0, redis0, wall0 = process_cpu(pid), redis_cpu(server), time.perf_counter()
    for step in range(first + 10, first + 10 + steps):
        one(step)
        n_steps += 1
    service1, redis1, wall1 = process_cpu(pid), redis_cpu(server), time.perf_counter()
    door = type(client).__name__.removesuffix("Client").lower()
    return DoorCost(
        door,
        1000 * (service1 - service0) / n_steps,
        1000 * (redis1 - redis0) / n_steps,
        1000 * (wall1 - wall0) / n_steps,
    )


def main(progress: Callable[[str], None] = print) -> int:
    with private_redis() as url:
        store = cdas.RedisStore(url)
        coord = cdas.Coordinator(store)
        server = store.client

        progress("1. Redis memory per prompt, every strategy, N = 100,000")
        rows = [prompt_memory(coord, server, s, 100_000, False) for s in sorted(cdas.STRATEGIES)]
        rows.append(prompt_memory(coord, server, "cdas", 100_000, True))
        print(f"{'strategy':<14}{'ids':<16}{'N':>10}{'registered B/prompt':>21}{'loaded':>8}")
        for r in rows:
            print(f"{r.strategy:<14}{r.ids:<16}{r.n:>10,}{r.registered:>21.0f}{r.loaded:>8.0f}")

        progress("2. what steps add: N = 12,000, B = 1,024, 1,400 steps")
        points = step_memory(coord, server, 12_000, 1024, 1400, 200)
        print(f"{'step':>6}{'run bytes':>14}{'per step since previous':>26}")
        print(f"{0:>6}{points[0][1]:>14,}")
        for (s0, m0), (s1, m1) in itertools.pairwise(points):
            print(f"{s1:>6}{m1:>14,}{(m1 - m0) / (s1 - s0):>26,.0f}")

        progress("3. N = 1,000,000: registration peak, snapshot size")
        server.flushdb()
        server.config_set("maxmemory", "0")
        before = used_memory(server)
        server.execute_command("MEMORY", "PURGE")
        base_peak = peak_memory(server)
        coord.put_run("big", prompts=1_000_000)
        after_register = used_memory(server)
        peak = peak_memory(server)
        pupils = Pupils(1_000_000, 2)
        load_all(coord, "big", 1_000_000, pupils)
        loaded = used_memory(server)
        snapshot = coord.snapshot("big")
        print(
            f"registered {(after_register - before) / 1e6:.0f} MB, loaded "
            f"{(loaded - before) / 1e6:.0f} MB; used_memory_peak during registration "
            f"{(peak - before) / 1e6:.0f} MB above the empty server (peak before: "
            f"{(base_peak - before) / 1e6:.0f} MB); snapshot {len(snapshot) / 1e6:.1f} MB "
            f"({len(snapshot) / 1_000_000:.1f} B/prompt)"
        )

        progress("4. CPU per full step and the coordinator's memory")
        coord.put_run("small", prompts=12_000)
        small = Pupils(12_000, 3)
        load_all(coord, "small", 12_000, small)
        with serve_process("--store", url) as served:
            pid = served.process.pid
            memory = [("started", process_memory(pid)["VmRSS"])]
            costs = []
            with RestClient(served.url) as rest, GrpcClient(served.target) as grpc_client:
                for run, n, run_pupils in (("big", 1_000_000, pupils), ("small", 12_000, small)):
                    rest_cost = door_cost(rest, pid, server, run, run_pupils, 1, 300)
                    grpc_cost = door_cost(grpc_client, pid, server, run, run_pupils, 311, 300)
                    costs += [(n, rest_cost), (n, grpc_cost)]
            memory.append(("1,240 steps over REST and gRPC", process_memory(pid)["VmHWM"]))
            with httpx.Client(base_url=served.url, timeout=120) as http:
                http.get("/metrics").raise_for_status()
                memory.append(("a /metrics scrape", process_memory(pid)["VmHWM"]))
                got = http.get("/v1/runs/big/snapshot")
                got.raise_for_status()
                memory.append(("GET the 10^6 run's snapshot", process_memory(pid)["VmHWM"]))
                http.put(
                    "/v1/runs/copy/snapshot",
                    content=got.content,
                    headers={"content-type": "application/octet-stream"},
                ).raise_for_status()
                memory.append(("PUT it back as a new run", process_memory(pid)["VmHWM"]))
        print(
            f"{'N':>10} {'door':<6}{'service CPU ms/step':>21}{'Redis CPU ms/step':>19}"
            f"{'wall ms/step':>14}"
        )
        for n, c in costs:
            print(f"{n:>10,} {c.door:<6}{c.service_ms:>21.2f}{c.redis_ms:>19.2f}{c.wall_ms:>14.2f}")
        print("coordinator resident memory (VmRSS at start, then the peak VmHWM after each):")
        for what, size in memory:
            print(f"  {what:<34}{size / (1 << 20):>6.0f} MiB")

        progress("5. a /metrics scrape: 500 runs of 1,000 prompts, 2 steps each, over REST")
        server.flushdb()
        with serve_process("--store", url) as served, httpx.Client(base_url=served.url) as http:
            with RestClient(served.url) as rest:
                for i in range(500):
                    run, scraped = f"scrape-{i}", Pupils(1000, 10 + i)
                    rest.put_run(run, prompts=1000)
                    for step in (1, 2):  # results for most prompts: every D bin populated
                        batch = rest.next_batch(run, step, 512)
                        idx = np.array(batch.prompt_ids, dtype=np.int64)
                        results = _results(batch.prompt_ids, scraped.correct(idx))
                        rest.report_results(run, step, results)
            http.get("/metrics").raise_for_status()  # warm-up
            scrapes = 10
            pid = served.process.pid
            redis0, service0, wall0 = redis_cpu(server), process_cpu(pid), time.perf_counter()
            for _ in range(scrapes):
                text = http.get("/metrics", timeout=60).text
            wall = (time.perf_counter() - wall0) / scrapes
            service = (process_cpu(pid) - service0) / scrapes
            redis_s = (redis_cpu(server) - redis0) / scrapes
        samples = [line for line in text.splitlines() if line and not line.startswith("#")]
        per_run = sum('run="scrape-' in line for line in samples) / 500
        print(
            f"one scrape of 500 runs: {wall * 1000:.0f} ms wall, "
            f"{service * 1000:.0f} ms coordinator CPU, {redis_s * 1000:.1f} ms Redis CPU, "
            f"{len(text) / 1e6:.1f} MB of text, {per_run:.0f} samples per run "
            f"(the replica that served the run's reports)"
        )
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(lambda message: print(f"  .. {message}", file=sys.stderr, flush=True)))
