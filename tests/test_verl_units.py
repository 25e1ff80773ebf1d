"""cdas-verl's pure parts: settings from verl's config and the environment, the grouping of a
batch's rollouts, the pinned verl release, and the prepare step that gives rows an id."""

from __future__ import annotations

import math

import pyarrow as pa
import pytest
from cdas_verl.groups import Group, MissingIdError, dataset_prompt_ids, groups
from cdas_verl.prepare import with_index
from cdas_verl.settings import SamplerSettings, SettingsError
from cdas_verl.version import VerlVersionError, check_verl_version

from cdas.client.prompt_ids import PromptIdError


def test_settings_come_from_the_config_section_else_the_environment() -> None:
    env = {"CDAS_RUN": "from-env", "CDAS_STRATEGY": "random", "CDAS_PARAMS": '{"threshold": 0.25}',
           "CDAS_SEED": "7", "CDAS_COORDINATOR_URL": "grpc://c:50051"}  # fmt: skip
    s = SamplerSettings.from_config({"run": "from-config", "max_rounds": 3}, env)
    assert (s.run, s.strategy, dict(s.params), s.seed, s.url, s.max_rounds) == (
        "from-config", "random", {"threshold": 0.25}, 7, "grpc://c:50051", 3
    )  # fmt: skip
    assert SamplerSettings.from_config(None, {"CDAS_RUN": "r"}).embedded


@pytest.mark.parametrize(
    ("section", "env", "message"),
    [
        ({}, {}, r"data\.sampler\.cdas\.run \(or \$CDAS_RUN\) is required"),
        ({"run": "r", "nope": 1}, {}, r"unknown key data\.sampler\.cdas\.nope"),
        ({"run": "r", "url": "ftp://x"}, {}, "must start with http://"),
        ({"run": "r"}, {"CDAS_SEED": "x"}, r"seed \(\$CDAS_SEED\) must be an integer"),
        ({"run": "r"}, {"CDAS_PARAMS": "{"}, r"\$CDAS_PARAMS is not JSON"),
        ({"run": "r", "max_rounds": 0}, {}, "max_rounds must be >= 1"),
        (
            {"run": "r", "token_file": "/nonexistent/token", "url": "http://c:8000"},
            {},
            "token file",
        ),
    ],
)
def test_malformed_settings_name_the_key(
    section: dict[str, object], env: dict[str, str], message: str
) -> None:
    with pytest.raises(SettingsError, match=message):
        SamplerSettings.from_config(section, env).connect()


def test_rollouts_group_by_uid_with_their_prompt_id_and_nan_rewards_left_out() -> None:
    rows = [{"extra_info": {"index": i // 2}} for i in (0, 1, 2, 3, 4, 5)]
    uids = ["a", "a", "b", "b", "c", "c"]
    rewards = [1.0, 0.0, math.nan, math.nan, 0.5, 1.0]
    assert groups(uids, rows, rewards, "extra_info.index") == [
        Group("a", "0", (1.0, 0.0)),
        Group("c", "2", (0.5, 1.0)),
    ]
    with pytest.raises(ValueError, match="uid 'a' holds rollouts of '0' and '1'"):
        groups(["a", "a"], rows[1:3], [1.0, 1.0], "extra_info.index")


def test_dataset_ids_must_exist_and_be_unique() -> None:
    rows = [{"extra_info": {"index": 3}}, {"extra_info": {"index": 4}}]
    assert dataset_prompt_ids(rows, "extra_info.index", "k") == ["3", "4"]
    with pytest.raises(MissingIdError, match=r"row 1 .* no 'extra_info.index' \(k\)"):
        dataset_prompt_ids([rows[0], {"extra_info": {}}], "extra_info.index", "k")
    with pytest.raises(PromptIdError, match="rows 0 and 1 have the same"):
        dataset_prompt_ids([rows[0], rows[0]], "extra_info.index", "k")


def test_prepare_gives_rows_without_an_index_their_row_number() -> None:
    table = pa.Table.from_pylist([{"prompt": "a"}, {"prompt": "b"}])
    assert with_index(table).column("extra_info").to_pylist() == [{"index": 0}, {"index": 1}]
    kept = pa.Table.from_pylist(
        [{"extra_info": {"index": 9, "split": "x"}}, {"extra_info": {"index": None, "split": "y"}}]
    )
    assert with_index(kept).column("extra_info").to_pylist() == [
        {"index": 9, "split": "x"},
        {"index": 1, "split": "y"},
    ]


def test_another_verl_release_is_refused_naming_it() -> None:
    assert check_verl_version() == "0.7.1"
    with pytest.raises(VerlVersionError, match=r"0\.9\.1"):
        check_verl_version("0.9.1")
