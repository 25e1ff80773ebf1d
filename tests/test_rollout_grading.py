"""The rollout worker's grader: real math-verify on real math12k ground truths."""

from __future__ import annotations

import random
import string
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
from cdas_rollout import grading
from cdas_rollout.dataset import Dataset, load_dataset
from cdas_rollout.grading import grade, grade_group, last_boxed

from tests.tiny_lm import MATH12K


@pytest.fixture(scope="module")
def math12k() -> Dataset:
    return load_dataset(MATH12K)


def truth(dataset: Dataset, value: str) -> str:
    """A real ground truth of math12k equal to ``value`` (so the tests grade real rows)."""
    return next(e.answer for e in dataset if e.answer == value)


def test_every_sampled_math12k_ground_truth_grades_itself_right(math12k: Dataset) -> None:
    # 200 rows spread over the file: fractions, intervals, text answers, matrices, ...
    sample = math12k.examples[::60]
    assert len(sample) == 200
    wrong = [e.answer for e in sample if grade(f"So \\boxed{{{e.answer}}}.", e.answer) != 1.0]
    assert wrong == []


@pytest.mark.parametrize(
    ("ground_truth", "answer"),
    [
        ("\\frac{1}{2}", "0.5"),
        ("\\frac{1}{2}", "\\dfrac{1}{2}"),
        ("\\frac{1}{2}", "1/2"),
        ("\\frac{1}{2}", "\\tfrac12"),
        ("\\frac{2}{3}", "\\dfrac{2}{3}"),
        ("\\text{(D)}", "D"),
        ("\\text{(D)}", "\\text{(D)}"),
        ("3\\sqrt{2}", "\\sqrt{18}"),
    ],
)
def test_equivalent_forms_are_right(math12k: Dataset, ground_truth: str, answer: str) -> None:
    gt = truth(math12k, ground_truth)
    assert grade(f"Let's see. The answer is $\\boxed{{{answer}}}$.", gt) == 1.0


def test_an_interval_union_in_another_form_is_right(math12k: Dataset) -> None:
    row2 = math12k["2"]  # solve an inequality: a union of two open intervals
    assert "\\cup" in row2.answer
    answer = "(-4.5,-2)\\cup\\left(\\frac{1-\\sqrt5}{2},\\frac{1+\\sqrt5}{2}\\right)"
    assert grade(f"\\boxed{{{answer}}}", row2.answer) == 1.0
    assert grade("\\boxed{(-4.5,-2)}", row2.answer) == 0.0


@pytest.mark.parametrize(
    ("ground_truth", "answer"),
    [
        ("\\frac{1}{2}", "0.49"),
        ("\\frac{1}{2}", "\\frac{1}{3}"),
        ("\\frac{2}{3}", "\\frac{3}{2}"),
        ("\\text{(D)}", "(C)"),
        ("3\\sqrt{2}", "\\sqrt{17}"),
    ],
)
def test_wrong_answers_are_wrong(math12k: Dataset, ground_truth: str, answer: str) -> None:
    assert grade(f"The answer is \\boxed{{{answer}}}.", truth(math12k, ground_truth)) == 0.0


def test_integer_ground_truths_off_by_one_are_wrong(math12k: Dataset) -> None:
    integers = [e.answer for e in math12k if e.answer.isdigit()][:50]
    assert len(integers) == 50
    assert all(grade(f"\\boxed{{{int(t) + 1}}}", t) == 0.0 for t in integers)
    assert all(grade(f"\\boxed{{{t}}}", t) == 1.0 for t in integers)


def test_the_last_box_is_the_answer() -> None:
    text = "First \\boxed{3}, but that was wrong; finally \\boxed{5}."
    assert last_boxed(text) == "5"
    assert grade(text, "5") == 1.0
    assert grade(text, "3") == 0.0
    # an unclosed last box: the last complete one counts
    assert last_boxed("\\boxed{7} then \\boxed{8") == "7"
    assert last_boxed("\\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"
    assert last_boxed("\\fbox{4}") == "4"
    assert last_boxed("\\boxed 9 is it") == "9"


@pytest.mark.parametrize(
    "completion",
    [
        "",
        "The answer is 5",  # no box: the prompt asks for one
        "\\boxed{}",
        "\\boxed{",
        "}}}{{\\frac",
        "\\boxed{\\frac{",
        "\\boxed{5",
        "\\boxed{\\frac{}{}}",
        "\\boxed{\\left(}",
        "\\boxed{" + "(" * 300 + "}",
        "\\boxed{" + "9" * 5000 + "}",  # longer than MAX_ANSWER_CHARS
        "\x00\x01\x02 \ufffd \\boxed{\x00}",
        "$$$$\\\\\\\\{}{}{}",
    ],
)
def test_garbage_grades_zero_and_never_raises(completion: str) -> None:
    assert grade(completion, "5") == 0.0


def test_random_noise_never_raises() -> None:
    rng = random.Random(0)
    alphabet = string.printable + "\\{}^_$αβ∞"
    for _ in range(200):
        noise = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 80)))
        if rng.random() < 0.5:
            noise = f"{noise}\\boxed{{{noise[:10]}}}"
        assert grade(noise, "\\frac{1}{2}") in (0.0, 1.0)


def test_bad_ground_truths_grade_zero() -> None:
    assert grade("\\boxed{5}", "") == 0.0
    assert grade("\\boxed{5}", "   ") == 0.0
    assert grade("\\boxed{5}", None) == 0.0  # type: ignore[arg-type]
    assert grade(None, "5") == 0.0  # type: ignore[arg-type]


def test_grading_from_threads_matches_the_main_thread(math12k: Dataset) -> None:
    """math-verify's signal alarms only work in the main thread; the grader switches them off
    elsewhere (and must not raise the "signal only works in main thread" ValueError)."""
    rows = math12k.examples[:400:10]
    cases = []
    for e in rows:
        cases.append((f"\\boxed{{{e.answer}}}", e.answer))
        cases.append(("\\boxed{1234567}", e.answer))
        cases.append(("garbage }{", e.answer))
    expected = [grade(c, t) for c, t in cases]
    assert expected.count(1.0) == len(rows)
    threads_seen: set[str] = set()

    def work(case: tuple[str, str]) -> float:
        threads_seen.add(threading.current_thread().name)
        assert grading._timeouts(5) is None  # no alarm outside the main thread
        return grade(*case)

    with ThreadPoolExecutor(max_workers=4) as pool:
        got = list(pool.map(work, cases))
    assert got == expected
    assert threading.main_thread().name not in threads_seen
    assert grading._timeouts(5) == 5  # the main thread keeps math-verify's timeouts


def test_grade_group_keeps_the_order() -> None:
    assert grade_group(["\\boxed{2}", "\\boxed{3}", "no", "\\boxed{2.0}"], "2") == [
        1.0,
        0.0,
        0.0,
        1.0,
    ]
