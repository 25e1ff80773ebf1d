"""The ``cdas`` command line: ``cdas serve``, ``cdas demo``, ``cdas bench core|redis|service``,
``cdas version``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import cdas

MATH12K_PROMPTS = 12000
"""The paper's training set (shared/data/math12k.parquet): prompt ids are its row indexes."""


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _sizes(text: str) -> list[int]:
    try:
        return [int(float(part)) for part in text.split(",") if part]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes {text!r}: give numbers like 1e4,1e6") from exc


def cmd_bench_core(args: argparse.Namespace) -> int:
    from cdas.bench import core

    sizes = args.sizes or ([1000, 10000] if args.quick else [10**4, 10**5, 10**6, 4 * 10**6])
    steps = args.steps or (20 if args.quick else 200)
    naive_steps = args.naive_steps or (2 if args.quick else 3)
    rows = core.run(sizes, args.batch, steps, naive_steps, args.seed, progress=_progress)
    missed = any("MISSED" in line for line in core.targets(rows))
    return 1 if (args.check and missed) else 0


def cmd_bench_redis(args: argparse.Namespace) -> int:
    from cdas.bench import redis_store

    sizes = args.sizes or ([10**4, 10**5] if args.quick else [10**5, 10**6])
    steps = args.steps or (20 if args.quick else 200)
    rows = redis_store.run(args.url, sizes, args.batch, steps, args.seed, progress=_progress)
    missed = any("MISSED" in line for line in redis_store.targets(rows))
    return 1 if (args.check and missed) else 0


def cmd_demo(args: argparse.Namespace) -> int:
    from cdas.sim.toy import ToyLearner, train

    strategies = [s for s in args.strategies.split(",") if s]
    coord = cdas.Coordinator(cdas.MemoryStore())
    print(
        f"cdas demo: {len(strategies)} strategies on {args.prompts:,} prompts (the MATH training "
        f"set's size), B = {args.batch}, G = 8, {args.steps} steps, toy learner, embedded store\n"
    )
    rows = []
    for name in strategies:
        started = time.perf_counter()
        coord.put_run(f"demo-{name}", strategy=name, prompts=args.prompts, seed=args.seed)
        learner = ToyLearner(args.prompts, seed=args.seed)
        summary = train(
            coord, f"demo-{name}", learner, args.steps, args.batch, rounds=name == "dynamic"
        )
        rows.append(summary)
        _progress(f"{name}: {time.perf_counter() - started:.1f} s")
    print(f"{'strategy':<14}{'zero-gradient share':>20}{'final accuracy':>16}{'rollouts':>12}")
    for r in rows:
        print(f"{r.strategy:<14}{r.zero_gradient:>20.3f}{r.accuracy:>16.3f}{r.rollouts:>12,}")
    print(
        "\nzero-gradient share: groups whose G answers were all right or all wrong (no GRPO "
        "gradient);\naccuracy: the toy model's expected pass rate over all prompts."
    )
    return 0


def open_store(spec: str, state_file: str | None = None) -> cdas.Store:
    """``memory`` (embedded; ``state_file`` loaded at start when it exists) or a Redis URL."""
    if spec == "memory":
        if state_file and Path(state_file).exists():
            return cdas.MemoryStore.load(state_file)
        return cdas.MemoryStore()
    if spec.startswith(("redis://", "rediss://", "unix://", "redis+cluster://")):
        if state_file:
            raise SystemExit("--state-file is for --store memory (Redis keeps its own state)")
        return cdas.RedisStore(spec)
    raise SystemExit(f"--store {spec!r}: give memory or a redis:// URL")


def cmd_serve(args: argparse.Namespace) -> int:
    import asyncio

    from cdas.service import logs
    from cdas.service.server import Service
    from cdas.service.settings import ServiceSettings, load_token

    logs.configure(args.log_level)
    try:
        token = load_token(args.token_file)
    except cdas.CdasError as exc:
        raise SystemExit(exc.message) from exc
    store = open_store(args.store, args.state_file)
    settings = ServiceSettings(
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        token=token,
        max_body_bytes=args.max_body_mb << 20,
        grace_seconds=args.grace,
        drain_seconds=args.drain,
        threads=args.threads,
    )
    on_close = None
    if args.state_file and isinstance(store, cdas.MemoryStore):
        memory, path = store, args.state_file

        def on_close() -> None:
            memory.save(path)

    service = Service(cdas.Coordinator(store), settings, on_close)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(service.run())
    return 0


def cmd_bench_service(args: argparse.Namespace) -> int:
    from cdas.bench import service as service_bench

    sizes = args.sizes or ([10**4] if args.quick else [10**6])
    steps = args.steps or (30 if args.quick else 200)
    rows = service_bench.run(
        args.url, sizes, args.batch, steps, args.seed, args.concurrency, progress=_progress
    )
    missed = any("MISSED" in line for line in service_bench.targets(rows))
    return 1 if (args.check and missed) else 0


def _bench_flags(parser: argparse.ArgumentParser, sizes: str) -> None:
    """The flags every benchmark takes."""
    parser.add_argument("--sizes", type=_sizes, help=f"prompt counts (default {sizes})")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, help="timed steps per size (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdas", description="The CDAS sampling coordinator.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="compare strategies on a simulated run (the quick start)")
    demo.add_argument("--strategies", default="cdas,random,prioritized,dynamic")
    demo.add_argument("--prompts", type=int, default=MATH12K_PROMPTS)
    demo.add_argument("--batch", type=int, default=1024)
    demo.add_argument("--steps", type=int, default=110)
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(func=cmd_demo)

    bench = sub.add_parser("bench", help="benchmarks")
    bench_sub = bench.add_subparsers(dest="bench", required=True)
    core = bench_sub.add_parser("core", help="one CDAS step against the authors'-style step")
    _bench_flags(core, "1e4,1e5,1e6,4e6")
    core.add_argument("--naive-steps", type=int, help="timed baseline steps per size (default 3)")
    core.set_defaults(func=cmd_bench_core)

    red = bench_sub.add_parser("redis", help="a CDAS step through RedisStore against MemoryStore")
    _bench_flags(red, "1e5,1e6")
    red.add_argument("--url", help="a Redis to use (default: start a private redis-server)")
    red.set_defaults(func=cmd_bench_redis)

    serve = sub.add_parser("serve", help="REST and gRPC in one process")
    serve.add_argument(
        "--store", default="memory", help="memory (default, embedded) or redis://host:port/db"
    )
    serve.add_argument(
        "--state-file", help="embedded store: load at start, save at shutdown (a zip of snapshots)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
    serve.add_argument("--port", type=int, default=8000, help="REST port (0: any free port)")
    serve.add_argument("--grpc-port", type=int, default=50051, help="gRPC port (0: any free)")
    serve.add_argument(
        "--token-file", help="bearer token file (default: $CDAS_API_TOKEN; none: no auth)"
    )
    serve.add_argument("--max-body-mb", type=int, default=256, help="request size limit (MiB)")
    serve.add_argument("--grace", type=float, default=10.0, help="seconds for in-flight calls")
    serve.add_argument(
        "--drain", type=float, default=0.0, help="seconds NOT_SERVING before closing listeners"
    )
    serve.add_argument("--threads", type=int, default=32, help="worker threads for store calls")
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning"])
    serve.set_defaults(func=cmd_serve)

    svc = bench_sub.add_parser("service", help="full steps over REST and gRPC on Redis")
    _bench_flags(svc, "1e6")
    svc.add_argument("--url", help="a Redis to use (default: start a private redis-server)")
    svc.add_argument("--concurrency", default="1,16", help="concurrent trainers (default 1,16)")
    svc.set_defaults(func=cmd_bench_service)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: print(cdas.__version__) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
