"""The GRPO benchmark's parts, each against what it must compute: the task's sums and exact
check, the policy's digit places and its cached generation, exact accuracy, GRPO's advantages
and update, the settings' checks."""

from __future__ import annotations

import random

import pytest
import torch
from cdas_grpo import batching, task
from cdas_grpo.model import ModelConfig, Policy, digit_places, token_log_probs
from cdas_grpo.policy_ops import advantages, exact_accuracy, roll_out, update
from cdas_grpo.settings import PRESETS, Settings
from cdas_grpo.task import EOS, PAD, Rung, encode_answer, encode_prompt

pytestmark = pytest.mark.filterwarnings(
    "ignore:`torch.jit.script_method` is deprecated:DeprecationWarning"
)


def test_problems_are_sums_written_least_significant_digit_first() -> None:
    rng = random.Random(3)
    for rung in task.parse_rungs("2x1,2x3,3x2,4x1"):
        for _ in range(50):
            p = task.draw(rng, rung)
            operands = [int(x[::-1]) for x in p.text[:-1].split("+")]
            assert len(operands) == rung.operands
            assert all(len(x) == rung.digits for x in p.text[:-1].split("+"))
            assert int(p.answer[::-1]) == sum(operands)
            assert len(p.answer) <= rung.answer_length()
            assert p.rung == rung


def test_distinct_sets_share_no_problem_and_split_the_rungs_evenly() -> None:
    rng = random.Random(0)
    rungs = task.parse_rungs("2x2,3x1")
    train = task.distinct(rng, rungs, 101, set())
    held = task.distinct(rng, rungs, 40, {p.text for p in train})
    assert len({p.text for p in train}) == 101
    assert not {p.text for p in train} & {p.text for p in held}
    assert sum(p.rung == Rung(2, 2) for p in train) == 51
    with pytest.raises(ValueError, match="2x1 has too few distinct problems"):
        task.distinct(rng, task.parse_rungs("2x1"), 200, set())


@pytest.mark.parametrize(("text", "message"), [("2y3", "2y3"), ("1x3", "1x3"), ("", "''")])
def test_bad_rungs_are_named(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        task.parse_rungs(text)


def test_digit_places_count_within_each_number() -> None:
    tokens = torch.tensor([[PAD, *encode_prompt("12+345="), *encode_answer("75")]])
    places = digit_places(tokens)[0].tolist()
    #           pad bos 1  2  +  3  4  5  =  7  5  eos
    assert places == [0, 0, 1, 2, 0, 1, 2, 3, 0, 1, 2, 0]


def test_exact_check_wants_the_answer_and_the_end_token() -> None:
    problems = [task.Problem("21+1=", "31", Rung(2, 2))]
    good = encode_answer("31")
    cut = encode_answer("311")[:3]  # no <eos>: cut off by the length limit
    longer = encode_answer("311")
    completions = torch.tensor([[*good, PAD], [*cut, PAD], longer])
    assert batching.correct(problems, completions, 3).tolist() == [[1.0, 0.0, 0.0]]


def tiny_policy(seed: int = 0) -> Policy:
    torch.manual_seed(seed)
    return Policy(ModelConfig(layers=2, width=32, heads=2, places=6))


def test_cached_generation_samples_what_the_full_forward_pass_predicts() -> None:
    """Greedy decoding with the key/value cache equals argmax decoding by full passes over the
    growing sequence, for a left-padded batch of different prompt lengths."""
    policy = tiny_policy()
    problems = [task.Problem("1+2=", "3", Rung(2, 1)), task.Problem("12+345=", "357", Rung(2, 3))]
    prompts = batching.prompts(problems, torch.device("cpu"))
    generator = torch.Generator().manual_seed(0)
    cached = policy.generate(prompts, 5, generator, temperature=1e-4)
    sequence = prompts
    for _ in range(5):
        logits = policy(sequence)[:, -1]
        sequence = torch.cat([sequence, logits.argmax(dim=-1, keepdim=True)], dim=1)
    full = sequence[:, prompts.shape[1] :]
    for row in range(2):  # after <eos> the cached decoder writes <pad>
        ended = (full[row] == EOS).nonzero()
        stop = int(ended[0]) + 1 if len(ended) else 5
        assert cached[row, :stop].tolist() == full[row, :stop].tolist()
        assert (cached[row, stop:] == PAD).all()


def test_a_prompt_gets_the_same_logits_whatever_it_is_batched_with() -> None:
    policy = tiny_policy()
    short = task.Problem("1+2=", "3", Rung(2, 1))
    long = task.Problem("123+456=", "579", Rung(2, 3))
    alone = policy(batching.prompts([short], torch.device("cpu")))[:, -1]
    padded = policy(batching.prompts([long, short], torch.device("cpu")))[1:, -1]
    torch.testing.assert_close(alone, padded, atol=1e-5, rtol=1e-5)


def test_exact_accuracy_is_the_probability_of_sampling_the_answer() -> None:
    policy = tiny_policy()
    problems = [task.Problem("1+2=", "3", Rung(2, 1)), task.Problem("5+5=", "01", Rung(2, 1))]
    expected = 0.0
    for p in problems:
        tokens = torch.tensor([[*encode_prompt(p.text), *encode_answer(p.answer)]])
        logp, _ = token_log_probs(policy, tokens, len(encode_prompt(p.text)))
        expected += float(logp.sum().exp().detach()) / 2
    assert exact_accuracy(policy, problems) == pytest.approx(expected, rel=1e-5)
    assert 0 < expected < 1


def test_advantages_are_normalised_within_each_group() -> None:
    rewards = torch.tensor([[1.0, 0.0, 0.0, 1.0], [1.0, 1.0, 1.0, 1.0], [0.0, 0.0, 0.0, 1.0]])
    a = advantages(rewards)
    torch.testing.assert_close(a.mean(dim=1), torch.zeros(3), atol=1e-6, rtol=0)
    assert a[1].abs().max() == 0  # an all-right group teaches nothing
    assert a[0, 0] == pytest.approx(0.5 / (rewards[0].std().item() + 1e-4))
    assert a[2, 3] > 0 > a[2, 0]


def test_an_update_on_all_equal_groups_changes_nothing_and_a_mixed_one_moves_the_policy() -> None:
    policy = tiny_policy()
    problems = [task.Problem("1+2=", "3", Rung(2, 1))] * 3
    rolled = roll_out(policy, problems, 4, 1.0, torch.Generator().manual_seed(1))
    optimizer = torch.optim.SGD(policy.parameters(), lr=0.5)
    before = [p.detach().clone() for p in policy.parameters()]
    rolled.rewards = torch.ones(3, 4)
    update(policy, optimizer, [(rolled, torch.arange(3))], 1, torch.Generator())
    assert all(torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))
    rolled.rewards = torch.tensor([[1.0, 0, 0, 0]] * 3)
    entropy = update(policy, optimizer, [(rolled, torch.arange(3))], 1, torch.Generator())
    assert entropy > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, policy.parameters(), strict=True))


def test_settings_refuse_bad_values_by_name() -> None:
    with pytest.raises(ValueError, match="batch = 900 is larger than train_prompts = 768"):
        Settings(batch=900)
    with pytest.raises(ValueError, match=r"lr = -0\.1"):
        Settings(lr=-0.1)
    with pytest.raises(ValueError, match="rung '9x9'"):
        Settings(rungs="9x9")
    assert Settings().warm_start_key() == PRESETS["cpu"].warm_start_key()
    assert Settings(lr=0.5).warm_start_key() == Settings().warm_start_key()  # GRPO only
    assert Settings(warm_steps=7).warm_start_key() != Settings().warm_start_key()


def test_a_variant_arm_runs_cdas_with_its_parameters_and_keeps_its_label() -> None:
    from cdas_grpo.run import start_run, strategy_params

    import cdas

    settings = PRESETS["tiny"]
    assert strategy_params("cdas-fast", settings) == {"min_weight": 0.25}
    assert strategy_params("random", settings) == {}
    assert "schedule" in strategy_params("curriculum", settings)
    coordinator = cdas.Coordinator(cdas.MemoryStore())
    train = [task.draw(random.Random(k), settings.rung_list[0]) for k in range(12)]
    name = start_run(coordinator, settings, "cdas-retire", 0, "t", train)
    assert name == "t-cdas-retire-s0"
    info = coordinator.get_run(name)
    assert (info.strategy, info.params["retire_after"]) == ("cdas", 3)
    with pytest.raises(ValueError, match="does not exist"):
        strategy_params("cdas-slow", settings)
