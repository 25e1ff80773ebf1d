"""``cdas-openrlhf``: OpenRLHF's ``train_ppo_ray`` with the coordinator choosing the prompts.

Usage: ``cdas-openrlhf --coordinator.url URL --coordinator.run RUN [--coordinator.* ...]
<openrlhf.cli.train_ppo_ray flags>``. The ``--coordinator.*`` flags are taken out of the command
line, checked, and handed to the trainer actor through Ray's runtime environment
(``CoordinatorSettings.to_env``); every other flag goes to OpenRLHF unchanged. OpenRLHF's flag
parser runs inline under ``if __name__ == "__main__"``, so the launcher swaps
``openrlhf.trainer.ppo_trainer.PPOTrainer`` (which ``train()`` imports when it is called) for the
coordinator-backed subclass and runs the module as ``__main__`` with ``runpy``.

The API token is read from ``CDAS_API_TOKEN`` where the trainer actor runs (a local Ray inherits the
launcher's environment, ``--coordinator.token`` included) or from ``--coordinator.token_file`` (a
secret mounted on every node); it never travels in Ray's runtime environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import runpy
import sys
from collections.abc import Sequence

from cdas_openrlhf.settings import TOKEN_ENV, CoordinatorSettings, SettingsError, parse_param
from cdas_openrlhf.version import OPENRLHF_VERSION, OpenRLHFVersionError, check_openrlhf_version

OPENRLHF_MODULE = "openrlhf.cli.train_ppo_ray"
REFUSED_FLAGS = {
    "--train.async_enable": "async training generates ahead of the step it trains; "
    "cdas-openrlhf maps prompts to steps synchronously (leave the flag out)",
}
# OpenRLHF's own ray.init defaults (train_ppo_ray.train), kept when the launcher starts Ray first
RAY_ENV_DEFAULTS = {
    "TOKENIZERS_PARALLELISM": "true",
    "NCCL_DEBUG": "WARN",
    "RAY_ENABLE_ZERO_COPY_TORCH_TENSORS": "1",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cdas-openrlhf",
        description=(
            f"OpenRLHF {OPENRLHF_VERSION} GRPO/PPO with prompts chosen by the cdas coordinator. "
            f"Every flag not listed here goes to {OPENRLHF_MODULE} "
            f"(python -m {OPENRLHF_MODULE} --help lists them)."
        ),
    )
    c = parser.add_argument_group("coordinator")
    c.add_argument(
        "--coordinator.url",
        dest="url",
        required=True,
        help="http://host:8000 (REST) or grpc://host:50051",
    )
    c.add_argument(
        "--coordinator.run",
        dest="run",
        required=True,
        help="the run id (created on first start, found again on restart)",
    )
    c.add_argument(
        "--coordinator.strategy",
        dest="strategy",
        default="cdas",
        help="cdas, random, curriculum, prioritized, dynamic, mopps, learnability",
    )
    c.add_argument(
        "--coordinator.param",
        dest="params",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a strategy parameter (repeatable), e.g. warmup=false",
    )
    c.add_argument("--coordinator.seed", dest="seed", type=int, default=0)
    c.add_argument(
        "--coordinator.id_key",
        dest="id_key",
        default="id",
        help="dataset column of prompt ids; without it, ids are content hashes",
    )
    c.add_argument(
        "--coordinator.max_rounds",
        dest="max_rounds",
        type=int,
        default=10,
        help="coordinator rounds a step may use for dynamic filtering refills",
    )
    c.add_argument(
        "--coordinator.steps_per_episode",
        dest="steps_per_episode",
        type=int,
        default=None,
        help="steps per episode (default: prompts // rollout batch)",
    )
    c.add_argument(
        "--coordinator.retry_for",
        dest="retry_for",
        type=float,
        default=600.0,
        help="seconds to ride out an unreachable coordinator",
    )
    c.add_argument(
        "--coordinator.token",
        dest="token",
        default=None,
        help="the API token (a flag shows in ps: prefer $CDAS_API_TOKEN or the token file)",
    )
    c.add_argument(
        "--coordinator.token_file",
        dest="token_file",
        default=None,
        help="file holding the API token (else $CDAS_API_TOKEN)",
    )
    c.add_argument(
        "--coordinator.ca_file",
        dest="ca_file",
        default=None,
        help="CA bundle (PEM) of a TLS coordinator, https:// or grpcs:// (else $CDAS_CA_FILE)",
    )
    return parser


MATH_REWARD = "cdas-math"
"""``--reward.remote_url cdas-math``: the math-verify reward file this package ships."""


def resolve_reward(rest: list[str]) -> list[str]:
    """Replace ``cdas-math`` as ``--reward.remote_url``'s value by the path of ``reward.py``."""
    from cdas_openrlhf import reward

    out = list(rest)
    for k, arg in enumerate(out):
        if arg == f"--reward.remote_url={MATH_REWARD}":
            out[k] = f"--reward.remote_url={reward.__file__}"
        elif arg == MATH_REWARD and k > 0 and out[k - 1] == "--reward.remote_url":
            out[k] = reward.__file__
    return out


def parse(argv: Sequence[str]) -> tuple[CoordinatorSettings, list[str]]:
    """Split the command line into the coordinator's settings and OpenRLHF's flags."""
    parser = build_parser()
    ours, rest = parser.parse_known_args(list(argv))
    for flag, why in REFUSED_FLAGS.items():
        if flag in rest:
            parser.error(f"{flag} is not supported: {why}")
    try:
        settings = CoordinatorSettings(
            url=ours.url,
            run=ours.run,
            strategy=ours.strategy,
            params=dict(parse_param(p) for p in ours.params),
            seed=ours.seed,
            id_key=ours.id_key,
            max_rounds=ours.max_rounds,
            retry_for=ours.retry_for,
            steps_per_episode=ours.steps_per_episode,
            token_file=ours.token_file,
            ca_file=ours.ca_file,
        )
        if ours.token:  # into the environment a local Ray inherits, never into runtime_env
            os.environ[TOKEN_ENV] = ours.token
        settings.token()  # an unreadable token file fails here, not on a remote node
    except SettingsError as error:
        parser.error(str(error))
    return settings, resolve_reward(rest)


def install(settings: CoordinatorSettings) -> None:
    """Hand the settings to the trainer actor and swap in the coordinator-backed trainer."""
    import ray
    from openrlhf.trainer import ppo_trainer

    from cdas_openrlhf.trainer import CoordinatorPPOTrainer

    env = settings.to_env()
    os.environ.update(env)
    if not ray.is_initialized():
        defaults = {k: os.environ.get(k, v) for k, v in RAY_ENV_DEFAULTS.items()}
        ray.init(runtime_env={"env_vars": {**defaults, **env}})
    ppo_trainer.PPOTrainer = ray.remote(CoordinatorPPOTrainer)


def main(argv: Sequence[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    settings, rest = parse(sys.argv[1:] if argv is None else argv)
    try:
        check_openrlhf_version()
    except OpenRLHFVersionError as error:
        raise SystemExit(f"cdas-openrlhf: {error}") from None
    install(settings)
    sys.argv = [OPENRLHF_MODULE, *rest]
    runpy.run_module(OPENRLHF_MODULE, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
