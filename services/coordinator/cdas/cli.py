"""The ``cdas`` command line: ``cdas serve``, ``cdas export``, ``cdas demo``, ``cdas simulate``,
``cdas calibrate``, ``cdas bench core|redis|service|metrics``, ``cdas grpo`` (from the cdas-grpo
package), ``cdas version``."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cdas
from cdas.coordinator import DEFAULT_PAGE
from cdas.core.config import DEFAULT_MAX_PROMPTS
from cdas.sim.arms import VARIANTS


def _progress(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)


def _sizes(text: str) -> list[int]:
    try:
        return [int(float(part)) for part in text.split(",") if part]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"sizes {text!r}: give numbers like 1e4,1e6") from exc


def cmd_bench_core(args: argparse.Namespace) -> int:
    from cdas.bench import core

    sizes = args.sizes or ([1000, 10000] if args.quick else [10**4, 10**5, 10**6, 10**7])
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


def cmd_bench_metrics(args: argparse.Namespace) -> int:
    from cdas.bench import metrics as metrics_bench

    n = args.sizes[0] if args.sizes else (10**4 if args.quick else 10**5)
    steps = args.steps or (20 if args.quick else 200)
    result = metrics_bench.run(n, args.batch, steps, args.runs, args.seed, progress=_progress)
    missed = any("MISSED" in line for line in metrics_bench.targets(result))
    return 1 if (args.check and missed) else 0


def _twin_param(text: str) -> tuple[str, float]:
    name, sep, value = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--param {text!r}: give name=number") from exc


def cmd_demo(args: argparse.Namespace) -> int:
    from cdas.service.settings import load_token
    from cdas.sim.demo import DemoOptions, run_demo

    try:
        options = DemoOptions(
            strategies=[s for s in args.strategies.split(",") if s],
            steps=args.steps,
            data=args.data,
            host=args.host,
            port=args.port,
            grpc_port=args.grpc_port,
            out=Path(args.out),
            exit_when_done=args.exit,
            coordinator=args.coordinator,
            token=load_token(args.token_file) if args.coordinator else None,
            ca=args.ca_file if args.coordinator else None,
        )
        return run_demo(options)
    except (FileNotFoundError, ValueError, cdas.CdasError) as exc:
        raise SystemExit(f"cdas demo: {exc}") from exc


def cmd_simulate(args: argparse.Namespace) -> int:
    from cdas.sim import arms, experiment, page, realrun, summary
    from cdas.sim.progress import Progress
    from cdas.sim.twin import TwinParams

    try:
        params = TwinParams().with_(**dict(args.param or []))
        if args.prompts:
            params = params.with_(prompts=args.prompts)
        if args.batch:
            params = params.with_(batch=args.batch)
    except ValueError as exc:
        raise SystemExit(f"cdas simulate: {exc}") from exc
    strategies = [s for s in args.strategies.split(",") if s]
    for flag, value in (("--seeds", args.seeds), ("--steps", args.steps)):
        if value < 1:
            raise SystemExit(f"cdas simulate: {flag} {value}: give at least 1")
    if not strategies:
        raise SystemExit(f"cdas simulate: --strategies {args.strategies!r}: name at least one")
    if params.batch > params.prompts:
        raise SystemExit(
            f"cdas simulate: --batch {params.batch} is larger than --prompts {params.prompts}"
        )
    real = None
    if args.real_run:
        if not args.page:
            raise SystemExit("cdas simulate: --real-run goes on the page: give --page too")
        try:  # read before the simulation, so that a bad directory costs nothing
            real = realrun.Measured.load(Path(args.real_run))
        except (FileNotFoundError, ValueError) as exc:
            raise SystemExit(f"cdas simulate: --real-run {args.real_run}: {exc}") from None
    for name in strategies:
        try:
            arms.resolve(name)
        except ValueError as exc:
            raise SystemExit(f"cdas simulate: {exc}") from None
    exp = experiment.Experiment(
        strategies=strategies,
        seeds=args.seeds,
        steps=args.steps,
        params=params,
        band_sample=args.band_sample,
        prefix=args.run_prefix,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    progress = Progress(exp.total_steps(), "simulate")
    tick = lambda r: progress.advance(1, f"{r.strategy} seed {r.seed} step {r.step}")  # noqa: E731
    if args.url:
        from cdas.client.rest import RestClient

        with RestClient(args.url, args.token, ca=args.ca_file) as client:
            records = experiment.run(client, exp, on_step=tick)
    else:
        records = experiment.run(cdas.Coordinator(cdas.MemoryStore()), exp, on_step=tick)
    progress.close()
    rows, pictures = experiment.save(records, out)
    print(summary.text_table(rows))
    print(f"wrote {out}/steps.csv, summary.csv, summary.md and {len(pictures)} plots")
    if args.page:
        page.write(Path(args.page), out, records, exp, " ".join(sys.argv[1:]), real)
        print(f"wrote {args.page}")
    return 0


def cmd_calibrate(args: argparse.Namespace) -> int:
    from cdas.sim import calibrate
    from cdas.sim.progress import Progress

    seeds = list(range(args.seeds))
    progress = Progress(args.iterations, "calibrate")
    fitted = calibrate.fit(
        seeds,
        args.iterations,
        on_iteration=lambda i, value: progress.advance(1, f"loss {value:.2f}"),
    )
    progress.close()
    print("fitted parameters (copy into TwinParams's defaults):")
    for name in (*calibrate.FREE, "gpu_hours_per_unit"):
        print(f"  {name} = {getattr(fitted, name):.6g}")
    print("\nstrategy     target          step   paper   twin")
    for target, value in zip(
        calibrate.CALIBRATION_TARGETS, calibrate.observed(fitted, seeds), strict=True
    ):
        print(
            f"  {target.strategy:<11} {target.name:<14} {target.step:>4}  {target.value:.4f}"
            f"  {value:.4f}"
        )
    return 0


PLUGINS = {
    "grpo": (
        "real GRPO on a small policy: the strategies compared (needs cdas-grpo)",
        "the GRPO benchmark, which brings torch: `make grpo`, or "
        "`pip install torch==2.13.0 ./services/grpo` (README, 'Real GRPO on a laptop')",
    ),
}
"""Commands other packages provide (entry point group ``cdas.commands``): the name, its help, and
what to install when it is missing. The coordinator never imports them (they bring torch);
``cdas NAME ...`` loads the entry point only when that command is run."""


def run_plugin(name: str, argv: Sequence[str]) -> int:
    """``cdas NAME ARGV...``: the installed package's command, or what to install."""
    from importlib.metadata import entry_points

    found = entry_points(group="cdas.commands", name=name)
    if not found:
        raise SystemExit(f"cdas {name}: not installed; it needs {PLUGINS[name][1]}")
    return int(next(iter(found)).load()(list(argv)))


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
    from cdas.service.access import load_scoped_tokens
    from cdas.service.server import Service
    from cdas.service.settings import ServiceSettings, load_tls, load_token

    logs.configure(args.log_level)
    try:
        token = load_token(args.token_file)
        scoped = load_scoped_tokens(args.tokens_file) if args.tokens_file else None
        load_tls(args.tls_cert, args.tls_key)  # refused here, before the store or a port
    except cdas.CdasError as exc:
        raise SystemExit(exc.message) from exc
    store = open_store(args.store, args.state_file)
    settings = ServiceSettings(
        host=args.host,
        port=args.port,
        grpc_port=args.grpc_port,
        token=token,
        scoped_tokens=scoped,
        metrics_token=args.metrics_token,
        run_metrics=args.run_metrics,
        max_body_bytes=args.max_body_mb << 20,
        grace_seconds=args.grace,
        drain_seconds=args.drain,
        threads=args.threads,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )
    on_close = None
    if args.state_file and isinstance(store, cdas.MemoryStore):
        memory, path = store, args.state_file

        def on_close() -> None:
            memory.save(path)

    service = Service(cdas.Coordinator(store, max_prompts=args.max_prompts), settings, on_close)
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(service.run())
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``cdas export RUN --out FILE``: the difficulty export of one run, from a running
    coordinator (``--url``) or straight from a store, written page by page (bounded memory)."""
    from cdas.export import ExportError, format_of, write
    from cdas.service.settings import load_token
    from cdas.sim.progress import Progress

    if args.url and (args.store or args.state_file):
        raise SystemExit(
            "cdas export: --url reads a running coordinator, --store/--state-file a store; "
            "give one of them"
        )
    if not args.url and not args.state_file and args.store in (None, "memory"):
        raise SystemExit(
            "cdas export: say where the run is: --url URL (a running coordinator), --state-file "
            "FILE (an embedded coordinator's saved state) or --store redis://..."
        )
    progress: Progress | None = None

    def on_page(page: cdas.PromptPage) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(page.size - page.start, "export")
        done = page.start + len(page.columns)
        progress.advance(len(page.columns), f"{done}/{page.size} prompts")

    try:
        format_of(args.out)  # a bad file name is said before anything is read
        source: Any
        if args.url:
            from cdas.client import connect

            source = connect(args.url, load_token(args.token_file), ca=args.ca_file)
        else:
            source = cdas.Coordinator(open_store(args.store or "memory", args.state_file))
        pages = source.export_prompts(args.run_id, page_size=args.page_size)
        rows = write(pages, args.out, on_page)
    except (ExportError, cdas.CdasError, ValueError, OSError) as exc:
        raise SystemExit(f"cdas export: {exc}") from exc
    if progress is not None:
        progress.close()
    print(f"wrote {rows} prompts of run {args.run_id!r} to {args.out}")
    return 0


def cmd_bench_service(args: argparse.Namespace) -> int:
    from cdas.bench import service as service_bench
    from cdas.bench.streaming import stream_targets

    sizes = args.sizes or ([10**4] if args.quick else [10**6])
    steps = args.steps or (30 if args.quick else 200)
    rows, streamed, identical = service_bench.run(
        args.url,
        sizes,
        args.batch,
        steps,
        args.seed,
        args.concurrency,
        progress=_progress,
        stream_steps=args.stream_steps if args.stream_steps is not None else 4,
        stream_runs=tuple(int(c) for c in args.stream_runs.split(",") if c),
    )
    lines = service_bench.targets(rows) + stream_targets(streamed, identical)
    missed = any("MISSED" in line for line in lines)
    return 1 if (args.check and missed) else 0


def _bench_flags(parser: argparse.ArgumentParser, sizes: str) -> None:
    """The flags every benchmark takes."""
    parser.add_argument("--sizes", type=_sizes, help=f"prompt counts (default {sizes})")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, help="timed steps per size (default 200)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument("--check", action="store_true", help="exit 1 when a target is missed")


def _ca_flag(parser: argparse.ArgumentParser, when: str) -> None:
    """``--ca-file``: the CA bundle a client verifies a TLS coordinator with."""
    parser.add_argument(
        "--ca-file",
        default=os.environ.get("CDAS_CA_FILE") or None,
        metavar="PATH",
        help=f"{when}: the CA bundle (PEM) that signs its certificate (default: $CDAS_CA_FILE, "
        "else the default CAs)",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cdas", description="The CDAS sampling coordinator.")
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser(
        "demo", help="the quick start: serve, train simulated runs over REST, show the results"
    )
    demo.add_argument(
        "--strategies",
        default=",".join(("cdas", "random", "prioritized", "dynamic", *VARIANTS)),
        help="arms to train (default: the paper's strategies and the CDAS variants)",
    )
    demo.add_argument("--steps", type=int, default=110)
    demo.add_argument("--data", help="math12k parquet (default: $CDAS_MATH12K or data/)")
    demo.add_argument("--host", default="127.0.0.1")
    demo.add_argument("--port", type=int, default=8000, help="REST port (0: any free port)")
    demo.add_argument("--grpc-port", type=int, default=50051, help="gRPC port (0: any free)")
    demo.add_argument("--out", default="demo-out", help="where the plots and tables go")
    demo.add_argument("--exit", action="store_true", help="stop serving when the training ends")
    demo.add_argument(
        "--coordinator",
        help="train against this coordinator (REST URL) instead of serving one; exits when done",
    )
    demo.add_argument(
        "--token-file", help="with --coordinator: bearer token file (default: $CDAS_API_TOKEN)"
    )
    _ca_flag(demo, "with an https --coordinator")
    demo.set_defaults(func=cmd_demo)

    sim = sub.add_parser("simulate", help="every strategy on the training twin, with plots")
    sim.add_argument(
        "--strategies", default="cdas,random,prioritized,curriculum,dynamic,mopps,learnability"
    )
    sim.add_argument("--steps", type=int, default=110)
    sim.add_argument("--seeds", type=int, default=3, help="seeds 0..K-1 per strategy")
    sim.add_argument("--out", default="sim-out", help="directory for CSV, tables and plots")
    sim.add_argument("--url", help="a running coordinator's REST address (default: in process)")
    sim.add_argument("--token", help="its bearer token (default: none)")
    _ca_flag(sim, "with an https --url")
    sim.add_argument("--run-prefix", default="sim", help="run ids: PREFIX-STRATEGY-sSEED")
    sim.add_argument("--prompts", type=int, help="training prompts (default 12000)")
    sim.add_argument("--batch", type=int, help="B (default 1024)")
    sim.add_argument(
        "--band-sample", type=int, default=32, help="batch prompts read per step for the D band"
    )
    sim.add_argument(
        "--param", action="append", type=_twin_param, help="a twin parameter, name=value"
    )
    sim.add_argument("--page", help="also write the results page (docs/results.md)")
    sim.add_argument(
        "--real-run",
        help="with --page: a `cdas grpo` output directory (docs/grpo) to fit the twin to and "
        "predict (cdas/sim/realrun.py)",
    )
    sim.set_defaults(func=cmd_simulate)

    cal = sub.add_parser(
        "calibrate",
        help="fit the twin to the paper's Random and Prioritized runs (cdas/sim/calibrate.py)",
    )
    cal.add_argument("--seeds", type=int, default=2)
    cal.add_argument("--iterations", type=int, default=300)
    cal.set_defaults(func=cmd_calibrate)

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

    met = bench_sub.add_parser("metrics", help="what the metrics cost: a step, a report, a scrape")
    _bench_flags(met, "1e5")
    met.add_argument("--runs", type=int, default=16, help="runs in the scrape (default 16)")
    met.set_defaults(func=cmd_bench_metrics)

    serve = sub.add_parser("serve", help="REST and gRPC in one process")
    serve.add_argument(
        "--store",
        default=os.environ.get("CDAS_STORE", "memory"),
        help="memory (default, embedded) or redis://[:password@]host:port/db "
        "(default: $CDAS_STORE, so a password need not be on the command line)",
    )
    serve.add_argument(
        "--state-file", help="embedded store: load at start, save at shutdown (a zip of snapshots)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (0.0.0.0: all)")
    serve.add_argument("--port", type=int, default=8000, help="REST port (0: any free port)")
    serve.add_argument("--grpc-port", type=int, default=50051, help="gRPC port (0: any free)")
    serve.add_argument(
        "--token-file",
        help="bearer token file, an admin token (default: $CDAS_API_TOKEN; none: no auth)",
    )
    serve.add_argument(
        "--tokens-file",
        default=os.environ.get("CDAS_API_TOKENS_FILE") or None,
        metavar="PATH",
        help="scoped tokens: '<token> <scope>[,<scope>...]' per line, scopes read, "
        "write:<run-id prefix>, admin (default: $CDAS_API_TOKENS_FILE)",
    )
    serve.add_argument(
        "--metrics-token",
        action="store_true",
        default=os.environ.get("CDAS_METRICS_TOKEN", "") == "1",
        help="/metrics needs a token with the read scope (default: open, or $CDAS_METRICS_TOKEN=1)",
    )
    serve.add_argument(
        "--no-run-metrics",
        dest="run_metrics",
        action="store_false",
        default=os.environ.get("CDAS_RUN_METRICS", "1") != "0",
        help="drop the per-run series from /metrics, for a shared deployment "
        "(default: kept; $CDAS_RUN_METRICS=0 drops them)",
    )
    serve.add_argument(
        "--tls-cert",
        default=os.environ.get("CDAS_TLS_CERT") or None,
        metavar="PATH",
        help="certificate chain (PEM): REST serves HTTPS and gRPC TLS (default: $CDAS_TLS_CERT; "
        "none: plaintext); needs --tls-key",
    )
    serve.add_argument(
        "--tls-key",
        default=os.environ.get("CDAS_TLS_KEY") or None,
        metavar="PATH",
        help="the certificate's private key (PEM, unencrypted; default: $CDAS_TLS_KEY)",
    )
    serve.add_argument("--max-body-mb", type=int, default=256, help="request size limit (MiB)")
    serve.add_argument(
        "--max-prompts",
        type=int,
        default=int(os.environ.get("CDAS_MAX_PROMPTS", DEFAULT_MAX_PROMPTS)),
        help="most prompts one run may hold (default 10^7, or $CDAS_MAX_PROMPTS); larger "
        "put_run / add_prompts requests are refused with 413 before anything is allocated",
    )
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
    svc.add_argument(
        "--stream-steps",
        type=int,
        help="steps of B results per run posted one group per call by 64 writers, per door, "
        "into one run (into 16 runs: this over 16, at least 1); 0 leaves streaming out "
        "(default 4)",
    )
    svc.add_argument(
        "--stream-runs", default="1,16", help="runs the writers stream into (default 1,16)"
    )
    svc.set_defaults(func=cmd_bench_service)

    for name, (text, _install) in PLUGINS.items():
        plugin = sub.add_parser(name, help=text, add_help=False)
        plugin.add_argument("rest", nargs=argparse.REMAINDER)
        plugin.set_defaults(func=lambda a: run_plugin(a.command, a.rest))

    export = sub.add_parser(
        "export", help="every prompt of a run with its difficulty and last result, Parquet or CSV"
    )
    export.add_argument("run_id", metavar="RUN", help="the run's id")
    export.add_argument(
        "--out", required=True, metavar="FILE", help="FILE.parquet (needs pyarrow) or FILE.csv"
    )
    export.add_argument(
        "--url", help="a running coordinator: http(s)://host:8000 or grpc(s)://host:50051"
    )
    export.add_argument(
        "--token-file", help="with --url: bearer token file (default: $CDAS_API_TOKEN)"
    )
    _ca_flag(export, "with an https or grpcs --url")
    export.add_argument(
        "--store", help="instead of --url, read a store: redis://... (or memory, --state-file)"
    )
    export.add_argument(
        "--state-file", help="an embedded coordinator's saved state (cdas serve --state-file)"
    )
    export.add_argument(
        "--page-size",
        type=int,
        default=DEFAULT_PAGE,
        help=f"prompts read per page, one Parquet row group each (default {DEFAULT_PAGE})",
    )
    export.set_defaults(func=cmd_export)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda _args: print(cdas.__version__) or 0)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in PLUGINS:  # its flags are the plugin's own, --help included
        return run_plugin(argv[0], argv[1:])
    args = build_parser().parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
