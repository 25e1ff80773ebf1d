"""A restore cannot be made to use more memory than the bytes sent (issue 19's hardening): a
deflated member (a zip bomb: 64 MiB of zeros in about 64 KiB), a member declaring more bytes than
the body, and an array header declaring 10^12 elements over a few bytes are each refused as
``invalid_argument`` naming the snapshot, on both stores, before anything is decompressed or
allocated; nothing is created or changed. A real snapshot still restores."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest

import cdas


def _npy(shape: tuple[int, ...], body: bytes) -> bytes:
    header = f"{{'descr': '<f8', 'fortran_order': False, 'shape': {shape}, }}".encode()
    header += b" " * (63 - (10 + len(header)) % 64) + b"\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header + body


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def _bomb() -> bytes:
    zeros = _npy((8 << 20,), b"\0" * (64 << 20))
    return _zip({"meta.npy": _npy((1,), b"\0" * 8), "core_d.npy": zeros}, zipfile.ZIP_DEFLATED)


def _huge_header() -> bytes:
    return _zip({"meta.npy": _npy((1,), b"\0" * 8), "core_d.npy": _npy((10**12,), b"\0" * 16)})


def _lying_size() -> bytes:
    data = bytearray(_zip({"meta.npy": _npy((1,), b"\0" * 8)}))
    # the central directory's uncompressed size of the one member: 4 GiB - 1
    at = data.rfind(b"PK\x01\x02") + 24
    data[at : at + 4] = struct.pack("<I", 0xFFFFFFFF)
    return bytes(data)


@pytest.mark.parametrize(
    ("make", "says"),
    [(_bomb, "compressed"), (_huge_header, "declares an array"), (_lying_size, "snapshot")],
)
def test_a_hostile_archive_is_refused_without_using_memory(
    coord: cdas.Coordinator, make: object, says: str
) -> None:
    assert callable(make)
    data = make()
    coord.put_run("r", prompts=10)
    before = coord.snapshot("r")
    tracemalloc.start()
    try:
        for target in ("r", "new"):
            with pytest.raises(cdas.InvalidArgumentError) as bad:
                coord.restore(target, data)
            assert says in bad.value.message
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 * len(data) + (8 << 20), peak  # nothing near the declared sizes
    assert coord.snapshot("r") == before
    assert [r.run_id for r in coord.list_runs()] == ["r"]


def test_a_real_snapshot_still_restores(coord: cdas.Coordinator) -> None:
    coord.put_run("r", prompts=50, seed=2)
    batch = coord.next_batch("r", 1, 8)
    coord.report_results(
        "r", 1, [{"prompt_id": p, "correct": 4, "total": 8} for p in batch.prompt_ids]
    )
    coord.restore("copy", coord.snapshot("r"))
    assert coord.get_state("copy").competence == coord.get_state("r").competence
    assert np.isfinite(coord.get_run("copy").competence)
