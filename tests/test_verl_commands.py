"""The verl commands the project documents and ships, through verl 0.7.1's own config code.

services/verl/README.md's command for the paper's setup and docker-compose.yml's ``verl-trainer``
service (``docker compose --profile verl up``) are Hydra overrides of verl's ``ppo_trainer``
config. Each is composed by Hydra from verl's own config files (an unknown key or a key missing
its ``+`` fails), checked by verl's ``validate_config`` for the GPUs it asks for (batch sizes
against GPUs, micro batches set), and its sampler and reward settings are loaded as verl loads
them. The README's block must paste into a shell: no comment after a line continuation.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

# isort: off
from tests import verl_harness  # noqa: F401  first: the stand-ins for ray, before verl loads
# isort: on

from cdas_verl.settings import SamplerSettings
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from verl.trainer.ppo.utils import need_critic, need_reference_policy
from verl.utils.config import validate_config
from verl.utils.import_utils import load_extern_object

from tests import compose_stack as stack

README = stack.ROOT / "services" / "verl" / "README.md"


def readme_command() -> list[str]:
    """The ``python -m verl.trainer.main_ppo`` command of the README's paper-setup block, as the
    shell splits it."""
    text = README.read_text()
    section = text[text.index("## The paper's setup") :]
    block = re.search(r"```sh\n(.*?)```", section, re.S)
    assert block, "the paper's setup has a sh block"
    lines = block.group(1).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("python -m verl.trainer"))
    body = lines[start:]
    # every line of the command but its last continues it, and none holds a comment (after a
    # `\ # ...` the backslash escapes a space, the comment ends the command there)
    assert all(line.endswith(" \\") for line in body[:-1]), body
    assert not body[-1].endswith("\\"), body[-1]
    assert [line for line in body if "#" in line] == [], body
    joined = block.group(1).replace("\\\n", " ")
    commands = [shlex.split(line, comments=True) for line in joined.splitlines()]
    found = [c for c in commands if c[:3] == ["python", "-m", "verl.trainer.main_ppo"]]
    assert len(found) == 1, commands
    return found[0][3:]


def compose_command() -> tuple[list[str], dict[str, str]]:
    compose_file = stack.load_compose()
    service = compose_file["services"]["verl-trainer"]
    return list(service["command"]), {k: str(v) for k, v in service["environment"].items()}


def verl_config(overrides: list[str]) -> DictConfig:
    import verl

    folder = str(Path(verl.__file__).parent / "trainer" / "config")
    with initialize_config_dir(config_dir=folder, version_base=None):
        config = compose(config_name="ppo_trainer", overrides=overrides)
    OmegaConf.resolve(config)
    return config


def test_the_readme_block_pastes_into_a_shell() -> None:
    overrides = readme_command()
    assert overrides, "the command has its overrides"
    assert not [a for a in overrides if a.startswith("#")], overrides
    assert all("=" in a for a in overrides), overrides


@pytest.mark.parametrize("which", ["readme", "compose"])
def test_the_documented_commands_pass_verls_own_config_checks(which: str) -> None:
    overrides, env = (readme_command(), {}) if which == "readme" else compose_command()
    config = verl_config(overrides)
    validate_config(
        config=config,
        use_reference_policy=need_reference_policy(config),
        use_critic=need_critic(config),
    )
    assert config.algorithm.adv_estimator == "grpo"
    assert not need_critic(config)
    assert config.data.dataloader_num_workers == 0
    assert config.data.sampler.class_path == "pkg://cdas_verl.sampler"
    sampler = load_extern_object(config.data.sampler.class_path, config.data.sampler.class_name)
    assert sampler.__name__ == "CoordinatorSampler"
    settings = SamplerSettings.from_config(config.data.sampler.cdas, env)
    assert settings.url == "http://coordinator:8000"
    assert settings.strategy == "cdas"
    assert settings.id_key == "extra_info.index"  # where cdas_verl.prepare writes the ids
    reward = config.reward.custom_reward_function
    score = load_extern_object(reward.path, reward.name)
    assert score("qwen_remove", "so \\boxed{\\dfrac{2}{3}}", "\\frac{2}{3}") == 1.0
    assert score("qwen_remove", "so \\boxed{3}", "4") == 0.0
    assert "wandb" not in list(config.trainer.logger)
    if which == "readme":  # the paper's setup
        assert (config.data.train_batch_size, config.actor_rollout_ref.rollout.n) == (1024, 8)
        assert config.actor_rollout_ref.model.path == "Qwen/Qwen2.5-7B"
        assert config.trainer.n_gpus_per_node * config.trainer.nnodes == 8
        assert config.trainer.total_training_steps == 110
    else:
        assert config.trainer.default_local_dir.startswith("/checkpoints/")


def test_a_bad_override_is_refused_by_the_same_checks() -> None:
    """The checks above are live: verl refuses a key it does not know, a micro batch left unset
    and a batch the GPUs do not divide."""
    overrides = readme_command()
    plain = [a.removeprefix("+") for a in overrides]  # the sampler's keys without their +
    with pytest.raises(Exception, match="cdas"):
        verl_config(plain)
    unset = [a for a in overrides if not a.startswith("actor_rollout_ref.rollout.log_prob_micro")]
    config = verl_config(unset)
    with pytest.raises(ValueError, match="log_prob_micro_batch_size"):
        validate_config(config, need_reference_policy(config), need_critic(config))
    config = verl_config([*overrides, "trainer.n_gpus_per_node=7"])
    with pytest.raises((AssertionError, ValueError)):
        validate_config(config, need_reference_policy(config), need_critic(config))
