"""A snapshot whose strategy state is missing (a damaged or hand-edited file) is refused as
``invalid_argument`` naming the snapshot, on both stores, and creates or changes nothing."""

from __future__ import annotations

import io
import zipfile

import pytest

import cdas


def _without_strategy_arrays(data: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for name in source.namelist():
            if not name.startswith("strategy_"):
                target.writestr(name, source.read(name))
    return out.getvalue()


@pytest.mark.parametrize(
    ("strategy", "params"),
    [("cdas", {"retire_after": 2}), ("cdas", {}), ("mopps", {})],
)
def test_a_snapshot_without_its_strategy_state_is_invalid(
    coord: cdas.Coordinator, strategy: str, params: dict[str, object]
) -> None:
    coord.put_run("r", strategy=strategy, prompts=40, params=params)
    batch = coord.next_batch("r", 1, 8)
    coord.report_results(
        "r", 1, [{"prompt_id": p, "correct": 0, "total": 8} for p in batch.prompt_ids]
    )
    snapshot = coord.snapshot("r")
    assert any(n.startswith("strategy_") for n in zipfile.ZipFile(io.BytesIO(snapshot)).namelist())
    damaged = _without_strategy_arrays(snapshot)
    before = coord.snapshot("r")
    for target in ("copy", "r"):
        with pytest.raises(cdas.InvalidArgumentError) as bad:
            coord.restore(target, damaged)
        assert "snapshot" in bad.value.message
    assert sorted(r.run_id for r in coord.list_runs()) == ["r"]
    assert coord.snapshot("r") == before
