"""``cdas grpo``: real GRPO on a small policy, every sampling strategy side by side.

Reached as ``cdas grpo ...`` (the ``cdas`` command finds this package through its
``cdas.commands`` entry point) or ``cdas-grpo ...``. This module imports no torch until a run
starts, so ``--help`` and bad flags answer at once.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import cdas
from cdas.sim import arms

DEFAULT_STRATEGIES = "cdas,random,prioritized,dynamic"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdas grpo",
        description="Train a small policy with real GRPO on a synthetic arithmetic task, once "
        "per strategy and seed, from one warm start, and compare the sampling strategies.",
    )
    parser.add_argument(
        "--strategies",
        default=DEFAULT_STRATEGIES,
        help="comma-separated strategies or named CDAS variants (cdas.sim.arms): "
        + ", ".join(arms.VARIANTS),
    )
    parser.add_argument("--seeds", type=int, default=2, help="seeds 0..K-1 per strategy")
    parser.add_argument("--steps", type=int, help="GRPO steps per run (default: the preset's)")
    parser.add_argument(
        "--preset", default="cpu", help="cpu (default: this laptop, minutes), gpu (one H200), tiny"
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    parser.add_argument("--out", default="grpo-out", help="directory for CSV, tables and plots")
    parser.add_argument(
        "--url",
        help="a running coordinator (http://, https://, grpc://, grpcs://); default: embedded",
    )
    parser.add_argument("--token-file", help="with --url: bearer token file ($CDAS_API_TOKEN)")
    parser.add_argument(
        "--ca-file", help="with a TLS --url: the CA bundle (PEM) that signs it ($CDAS_CA_FILE)"
    )
    parser.add_argument(
        "--retry-for", type=float, default=120.0,
        help="seconds to ride out an unreachable coordinator (default 120)",
    )  # fmt: skip
    parser.add_argument(
        "--workers", type=int, help="runs at once, in processes (default: 2 on a CPU, 4 on cuda)"
    )
    parser.add_argument("--run-prefix", default="grpo", help="run ids: PREFIX-STRATEGY-sSEED")
    parser.add_argument("--page", help="also write the results page (docs/grpo.md)")
    parser.add_argument(
        "--replot",
        action="store_true",
        help="train nothing: rewrite the tables, plots and --page from OUT's steps.csv",
    )
    return parser


def fail(message: str) -> SystemExit:
    return SystemExit(f"cdas grpo: {message}")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from cdas_grpo.settings import PRESETS

    if args.preset not in PRESETS:
        raise fail(f"--preset {args.preset!r} does not exist; known: {sorted(PRESETS)}")
    strategies = [s.strip() for s in args.strategies.split(",") if s.strip()]
    if not strategies:
        raise fail(f"--strategies {args.strategies!r}: name at least one")
    for name in strategies:
        try:
            arms.resolve(name)
        except ValueError as exc:
            raise fail(str(exc)) from None
    for flag, value in (("--seeds", args.seeds), ("--steps", args.steps)):
        if value is not None and value < 1:
            raise fail(f"{flag} {value}: give at least 1")
    settings = PRESETS[args.preset]
    if args.steps:
        settings = settings.with_(steps=args.steps)
    token = None
    if args.url:
        from cdas.client.connect import connect
        from cdas.service.settings import load_token

        try:
            token = load_token(args.token_file)
            connect(args.url, token, ca=args.ca_file).close()  # a bad URL or CA fails here
        except cdas.CdasError as exc:
            raise fail(exc.message) from exc
        except ValueError as exc:
            raise fail(str(exc)) from exc
    import torch

    try:
        device = torch.device(args.device)
    except RuntimeError as exc:
        raise fail(f"--device {args.device!r}: {exc}") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise fail(f"--device {args.device!r}: this torch sees no CUDA device")
    if device.type not in ("cpu", "cuda"):
        raise fail(f"--device {args.device!r}: give cpu or cuda")
    workers = args.workers or (min(2, os.cpu_count() or 1) if device.type == "cpu" else 4)
    from cdas_grpo.bench import Plan
    from cdas_grpo.experiment import execute

    plan = Plan(
        settings=settings,
        strategies=strategies,
        seeds=args.seeds,
        out=Path(args.out),
        device=str(device),
        url=args.url,
        token=token,
        ca=args.ca_file,
        retry_for=args.retry_for,
        workers=max(1, min(workers, len(strategies) * args.seeds)),
        prefix=args.run_prefix,
    )
    page = Path(args.page) if args.page else None
    if args.replot:
        from cdas_grpo.experiment import replot

        return replot(plan, page)
    return execute(plan, page=page, argv=["grpo", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    raise SystemExit(main())
