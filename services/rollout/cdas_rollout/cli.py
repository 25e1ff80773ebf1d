"""``cdas-rollout``: the rollout worker's command line.

Example (a vLLM server on :8001, the coordinator on :8000, math12k, 4 workers of which this is 0)::

    cdas-rollout --coordinator http://coordinator:8000 --run grpo-1 \\
        --strategy cdas --seed 0 --data shared/data/math12k.parquet \\
        --backend openai --openai-url http://vllm:8001 --model Qwen/Qwen2.5-7B \\
        --tokenizer Qwen/Qwen2.5-7B --batch-size 1024 -n 8 --steps 110 \\
        --state-dir /var/lib/rollout/w0 --worker-index 0 --workers 4

``--coordinator grpc://host:50051`` talks gRPC instead of REST. With ``--strategy`` the run is
created (``put_run``, idempotent: the same config again is a no-op, another config a conflict)
with the dataset's prompt ids; without it the run must exist. Bad arguments exit with status 2 and
a message naming the bad value; a coordinator error exits with status 1.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdas.client import GrpcClient, RestClient, RetryPolicy, connect, params
from cdas.client.connect import SCHEMES
from cdas.core.errors import CdasError
from cdas_rollout.backends import BACKENDS, SamplingSettings, make_backend
from cdas_rollout.dataset import Dataset, load_dataset
from cdas_rollout.worker import RolloutWorker, WorkerConfig

TOKEN_ENV = "CDAS_API_TOKEN"


class UsageError(ValueError):
    """A bad command-line value (exit status 2)."""


def parse_params(items: Sequence[str]) -> dict[str, Any]:
    """``--param k=v`` pairs (``cdas.client.params``: a value is JSON when it parses as JSON)."""
    try:
        return params.parse_params(items)
    except ValueError as error:
        raise UsageError(str(error)) from None


def _at_least(name: str, minimum: int) -> Any:
    """An argparse type: an integer >= ``minimum``, else an error naming the flag and value."""

    def check(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{name} must be an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{name} must be >= {minimum}, got {value}")
        return value

    return check


def _positive(name: str) -> Any:
    return _at_least(name, 1)


def _non_negative(name: str) -> Any:
    return _at_least(name, 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="cdas-rollout",
        description="Rollout worker: asks the cdas coordinator for each step's prompts, generates "
        "G answers per prompt, grades them with math-verify and reports the rewards.",
    )
    c = p.add_argument_group("coordinator")
    c.add_argument(
        "--coordinator",
        default="http://127.0.0.1:8000",
        help="REST URL (http://host:8000, https://...) or grpc://host:50051 (grpcs://: TLS) "
        "(default %(default)s)",
    )
    c.add_argument("--run", required=True, help="the run id")
    c.add_argument("--token", help=f"API token (default: ${TOKEN_ENV})")
    c.add_argument(
        "--ca-file",
        metavar="PATH",
        help="CA bundle (PEM) that signs a TLS coordinator's certificate (default: $CDAS_CA_FILE, "
        "else the default CAs)",
    )
    c.add_argument("--strategy", help="create the run with this strategy if it does not exist")
    c.add_argument("--seed", type=int, default=0, help="the run's seed (with --strategy)")
    c.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="K=V",
        help="a strategy parameter (with --strategy), repeatable: --param warmup=false",
    )
    c.add_argument(
        "--retry-for",
        type=float,
        default=600.0,
        metavar="SECONDS",
        help="keep retrying an unreachable coordinator (or generation server) this long "
        "(default %(default)s)",
    )
    d = p.add_argument_group("data")
    d.add_argument("--data", required=True, type=Path, help="prompt set (.parquet or .jsonl)")
    d.add_argument("--prompt-key", default="prompt", help="text or chat column (default prompt)")
    d.add_argument("--answer-key", help="default: reward_model.ground_truth, answer, ...")
    d.add_argument("--id-key", help="default: the 'id' column if present, else the row index")
    g = p.add_argument_group("generation")
    g.add_argument("--backend", default="transformers", help=f"one of {', '.join(BACKENDS)}")
    g.add_argument("--model", required=True, help="model path or name (served name for openai)")
    g.add_argument("--openai-url", help="the OpenAI-compatible server (openai backend)")
    g.add_argument("--openai-api-key", help="default: $OPENAI_API_KEY")
    g.add_argument("--tokenizer", help="tokenizer for the chat template (openai backend)")
    g.add_argument("--device", help="torch device (transformers backend; default cuda if any)")
    g.add_argument("--max-new-tokens", type=_positive("--max-new-tokens"), default=1024)
    g.add_argument("--temperature", type=float, default=1.0)
    g.add_argument("--top-p", type=float, default=1.0)
    g.add_argument("--top-k", type=_non_negative("--top-k"), default=0, help="0: off")
    g.add_argument("--sampling-seed", type=int, help="seed the generation engine once")
    s = p.add_argument_group("steps")
    s.add_argument(
        "--batch-size", "-b", type=_positive("--batch-size"), required=True, help="B per step"
    )
    s.add_argument(
        "--group-size", "-n", type=_positive("--group-size"), default=8, help="G per prompt"
    )
    s.add_argument(
        "--steps",
        type=_non_negative("--steps"),
        required=True,
        help="run steps start-step .. start-step + steps - 1 (resumes inside that range)",
    )
    s.add_argument("--start-step", type=_non_negative("--start-step"), default=1)
    s.add_argument(
        "--workers", type=_positive("--workers"), default=1, help="workers sharing each step"
    )
    s.add_argument(
        "--worker-index",
        type=_non_negative("--worker-index"),
        default=0,
        help="this worker's share: the batch's ids[index::workers]",
    )
    s.add_argument("--state-dir", type=Path, help="spool and progress (resume after a restart)")
    s.add_argument("--keep-completions", action="store_true", help="store texts in the state dir")
    p.add_argument(
        "--log-level", type=str.upper, default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"]
    )
    return p


def make_client(
    url: str, token: str | None, retry_for: float, ca: str | None = None
) -> RestClient | GrpcClient:
    """REST for http(s)://, gRPC for grpc(s)://host:port; retries for ``retry_for`` seconds.
    ``ca``: the CA bundle of a TLS coordinator (None: ``$CDAS_CA_FILE``, else the default CAs)."""
    if not url.startswith(SCHEMES):
        raise UsageError(
            f"--coordinator {url!r} must start with http://, https://, grpc:// or grpcs://"
        )
    try:
        return connect(url, token, retry=RetryPolicy(for_seconds=retry_for, max_delay=2.0), ca=ca)
    except ValueError as exc:  # a CA file that cannot be read
        raise UsageError(f"--ca-file: {exc}") from None


def prompts_argument(dataset: Dataset) -> int | list[str]:
    """A count when the ids are the row indexes (what ``cdas simulate`` registers), else ids."""
    ids = dataset.ids
    if ids == [str(i) for i in range(len(ids))]:
        return len(ids)
    return ids


def ensure_run(client: RestClient | GrpcClient, args: argparse.Namespace, dataset: Dataset) -> None:
    log = logging.getLogger("cdas_rollout")
    if args.strategy:
        info = client.put_run(
            args.run,
            strategy=args.strategy,
            params=parse_params(args.param),
            seed=args.seed,
            prompts=prompts_argument(dataset),
        )
        log.info(
            "run %s %s (%s, %d prompts)",
            args.run,
            "created" if info.created else "exists",
            info.strategy,
            info.size,
        )
    else:
        if args.param:
            raise UsageError("--param needs --strategy (parameters are set when creating a run)")
        info = client.get_run(args.run)
    if info.size != len(dataset):
        log.warning(
            "run %s has %d prompts, %s has %d", args.run, info.size, args.data, len(dataset)
        )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request is noise
    try:
        if args.backend not in BACKENDS:
            raise UsageError(
                f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}"
            )
        if args.worker_index >= args.workers:
            raise UsageError(
                f"--worker-index {args.worker_index} must be below --workers {args.workers}"
            )
        if args.backend == "openai" and not args.openai_url:
            raise UsageError("--backend openai needs --openai-url (the server's base URL)")
        if not args.retry_for >= 0:
            raise UsageError(f"--retry-for must be >= 0, got {args.retry_for}")
        if not args.data.is_file():
            raise UsageError(f"--data {str(args.data)!r}: no such file")
        parse_params(args.param)
        sampling = SamplingSettings(
            max_new_tokens=args.max_new_tokens,
            temperature=args.temperature,
            top_p=args.top_p,
            top_k=args.top_k,
            seed=args.sampling_seed,
        )
        config = WorkerConfig(
            run_id=args.run,
            batch_size=args.batch_size,
            group_size=args.group_size,
            worker_index=args.worker_index,
            workers=args.workers,
            state_dir=args.state_dir,
            keep_completions=args.keep_completions,
        )
        dataset = load_dataset(
            args.data, prompt_key=args.prompt_key, answer_key=args.answer_key, id_key=args.id_key
        )
        client = make_client(
            args.coordinator, args.token or os.environ.get(TOKEN_ENV), args.retry_for, args.ca_file
        )
    except (UsageError, ValueError, FileNotFoundError) as exc:
        parser.exit(2, f"cdas-rollout: error: {exc}\n")
    try:
        ensure_run(client, args, dataset)
        backend = make_backend(
            args.backend,
            args.model,
            sampling,
            url=args.openai_url,
            api_key=args.openai_api_key or os.environ.get("OPENAI_API_KEY"),
            tokenizer=args.tokenizer,
            device=args.device,
            retry_for=args.retry_for,
        )
        worker = RolloutWorker(client, dataset, backend, config)
        worker.run(args.steps, start_step=args.start_step)
    except UsageError as exc:
        parser.exit(2, f"cdas-rollout: error: {exc}\n")
    except (CdasError, RuntimeError, ValueError, KeyError, OSError) as exc:
        print(f"cdas-rollout: error: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
