"""The math12k reader (``cdas.sim.dataset``): the shipped parquet file, a missing one, and
``$CDAS_MATH12K``."""

from __future__ import annotations

import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cdas.sim import dataset

SUFFIX = "Please reason step by step"


@pytest.fixture(scope="module")
def math12k() -> dataset.Dataset:
    return dataset.load()


def test_the_shipped_file_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(dataset.ENV, raising=False)
    assert dataset.default_path() == dataset.SHIPPED
    assert dataset.SHIPPED.is_file()
    assert dataset.SHIPPED.parts[-2:] == ("data", "math12k.parquet")


def test_load_reads_twelve_thousand_prompts(math12k: dataset.Dataset) -> None:
    assert len(math12k) == 12000
    assert len(math12k.questions) == len(math12k.answers) == 12000
    assert math12k.ids == [str(i) for i in range(12000)]
    assert math12k.ids[0] == "0"
    assert math12k.ids[-1] == "11999"


def test_questions_are_the_bare_user_text(math12k: dataset.Dataset) -> None:
    assert all(q.strip() for q in math12k.questions)
    assert not any(SUFFIX in q for q in math12k.questions)
    assert not any(q.startswith("Question:") for q in math12k.questions)
    assert all(q == q.strip() for q in math12k.questions)
    # the raw prompts do carry the instruction the reader removes
    raw = pq.read_table(dataset.SHIPPED, columns=["prompt"]).column("prompt").to_pylist()
    with_suffix = sum(SUFFIX in m["content"] for chat in raw for m in chat)
    assert with_suffix > 11000
    first = raw[0][0]["content"]
    assert first.startswith("Question:\n")
    assert (
        first.removeprefix("Question:\n").split("\n" + SUFFIX)[0].strip() == (math12k.questions[0])
    )


def test_most_prompts_have_a_ground_truth(math12k: dataset.Dataset) -> None:
    have = sum(1 for a in math12k.answers if a.strip())
    assert have >= 0.99 * len(math12k)
    assert math12k.answers[0] == "\\frac{2}{3}"


def test_a_missing_file_is_an_error_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "math.parquet"
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        dataset.load(missing)
    with pytest.raises(FileNotFoundError, match="math12k not found"):
        dataset.load(str(missing))
    with pytest.raises(FileNotFoundError):
        dataset.load(tmp_path)  # a directory is not the file


def test_the_environment_variable_is_honored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "copy.parquet"
    pq.write_table(pq.read_table(dataset.SHIPPED).slice(100, 25), copy)
    monkeypatch.setenv(dataset.ENV, str(copy))
    assert dataset.default_path() == copy
    small = dataset.load()
    assert len(small) == 25
    assert small.ids == [str(i) for i in range(25)]  # ids are the copy's own row indexes
    whole = dataset.load(dataset.SHIPPED)  # an explicit path wins over the variable
    assert len(whole) == 12000
    assert small.questions == whole.questions[100:125]
    assert small.answers == whole.answers[100:125]
    monkeypatch.setenv(dataset.ENV, str(tmp_path / "gone.parquet"))
    with pytest.raises(FileNotFoundError, match=r"gone\.parquet"):
        dataset.load()


def test_a_file_without_the_columns_is_an_error_naming_the_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.parquet"
    pq.write_table(pa.table({"prompt": [[{"role": "user", "content": "1+1?"}]]}), path)
    with pytest.raises(ValueError, match="'reward_model'"):
        dataset.load(path)


def test_rows_without_a_user_turn_or_a_truth_read_as_empty(tmp_path: Path) -> None:
    path = tmp_path / "odd.parquet"
    table = pa.table(
        {
            "prompt": [
                [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}],
                [{"role": "system", "content": "only a system turn"}],
            ],
            "reward_model": [{"ground_truth": "4", "style": "rule"}, None],
        }
    )
    pq.write_table(table, path)
    data = dataset.load(path)
    assert data.ids == ["0", "1"]
    assert data.questions == ["2+2?", ""]
    assert data.answers == ["4", ""]
