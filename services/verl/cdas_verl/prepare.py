"""``python -m cdas_verl.prepare IN OUT``: give every row of a verl parquet file a prompt id.

The sampler reads each row's id at ``extra_info.index`` (``data.sampler.cdas.id_key``), the place
verl's own preprocessing scripts write it. A file without one (the paper's ``math12k.parquet`` has
no ``extra_info``) gets the row number there; ``extra_info`` values a row already has are kept.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import pyarrow as pa
import pyarrow.parquet as pq


def with_index(table: pa.Table) -> pa.Table:
    """``table`` with ``extra_info.index`` = the row number wherever a row has none."""
    extra = table.column("extra_info").to_pylist() if "extra_info" in table.column_names else None
    rows = []
    for number in range(table.num_rows):
        info = dict((extra[number] if extra else None) or {})
        if info.get("index") is None:
            info["index"] = number
        rows.append(info)
    column = pa.array(rows)
    if extra is not None:
        return table.set_column(table.column_names.index("extra_info"), "extra_info", column)
    return table.append_column("extra_info", column)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cdas_verl.prepare", description=__doc__)
    parser.add_argument("source", help="a parquet file of verl training rows")
    parser.add_argument("target", help="where to write the file with extra_info.index")
    args = parser.parse_args(argv)
    pq.write_table(with_index(pq.read_table(args.source)), args.target)


if __name__ == "__main__":
    main()
