"""``python -m cdas_openrlhf.prepare IN OUT``: a verl-style parquet (math12k) as OpenRLHF reads it.

math12k keeps its ground truth nested (``reward_model.ground_truth``) and has no id column, while
OpenRLHF's ``--data.label_key`` names a top-level column. This writes one JSON line per row with
``id`` (the row index as text, the ids ``cdas demo`` and ``cdas-rollout`` register for the same
file, so runs and dashboards line up), ``prompt`` (the chat list, for
``--data.apply_chat_template``) and ``label``. O(N); reads with pyarrow (``datasets`` needs it).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq


def nested(row: dict[str, Any], path: str) -> Any:
    """``row["a"]["b"]`` for ``path`` "a.b"; a KeyError names the missing part."""
    value: Any = row
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            found = sorted(value) if isinstance(value, dict) else value
            raise KeyError(f"column {path!r}: no {part!r} in {found!r}")
        value = value[part]
    return value


def prepare(source: Path, target: Path, prompt: str, label: str) -> int:
    rows = pq.read_table(source).to_pylist()
    with target.open("w") as out:
        for index, row in enumerate(rows):
            record = {
                "id": str(index),
                "prompt": nested(row, prompt),
                "label": str(nested(row, label)),
            }
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return len(rows)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m cdas_openrlhf.prepare", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", type=Path, help="a parquet file (e.g. data/math12k.parquet)")
    parser.add_argument("target", type=Path, help="the JSON lines file to write")
    parser.add_argument("--prompt", default="prompt", help="the prompt column (default: prompt)")
    parser.add_argument(
        "--label",
        default="reward_model.ground_truth",
        help="the answer column, dotted for nested ones (default: reward_model.ground_truth)",
    )
    args = parser.parse_args(argv)
    if not args.source.exists():
        parser.error(f"no such file: {args.source}")
    try:
        count = prepare(args.source, args.target, args.prompt, args.label)
    except KeyError as error:
        parser.error(str(error.args[0]))
    print(
        f"{count} prompts -> {args.target} (ids are row indexes; --data.input_key prompt "
        "--data.label_key label --data.apply_chat_template)"
    )


if __name__ == "__main__":
    main()
