"""The snapshot format: a run's whole logical state as one byte string, the same for every store.

An uncompressed ``.npz`` archive (numpy's zip of ``.npy`` arrays, read back with
``allow_pickle=False``, so loading a snapshot executes nothing): JSON metadata in the member
``meta`` (format tag, config, counters, per-step statistics) and every array under its name.
Derived structures (ordered index, sum tree, competence sum, histogram) are not stored; a restore
rebuilds them deterministically from the logical state, so the restored run answers every later
call exactly as the original would.
"""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import numpy as np
import numpy.typing as npt

from cdas.core.errors import InvalidArgumentError

FORMAT = "cdas-snapshot/1"

Arrays = dict[str, npt.NDArray[Any]]


def encode(meta: dict[str, Any], arrays: Arrays) -> bytes:
    out = io.BytesIO()
    blob = np.frombuffer(json.dumps({"format": FORMAT, **meta}).encode(), dtype=np.uint8)
    members: dict[str, Any] = {"meta": blob, **arrays}
    np.savez(out, **members)
    return out.getvalue()


def check_members(data: bytes) -> None:
    """Refuse, before anything is decompressed or allocated, an archive that would make the
    reader use more memory than the bytes sent: a compressed member (a cdas snapshot stores its
    arrays uncompressed, so a deflated member is a zip bomb or not ours), a member larger than the
    whole body, or an array whose header declares more elements than its member holds (numpy
    allocates the declared size before reading). O(members); reads only the arrays' headers."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for info in archive.infolist():
            where = f"snapshot member {info.filename!r}"
            if info.compress_type != zipfile.ZIP_STORED:
                raise InvalidArgumentError(
                    f"{where} is compressed; a cdas snapshot stores its arrays uncompressed",
                    field="snapshot",
                    value=info.filename,
                )
            if info.file_size > len(data):
                raise InvalidArgumentError(
                    f"{where} declares {info.file_size} bytes in a body of {len(data)}",
                    field="snapshot",
                    value=info.filename,
                )
            with archive.open(info) as member:
                version = np.lib.format.read_magic(member)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(member)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(member)
                else:
                    raise InvalidArgumentError(
                        f"{where} is an array of format {version}, not one numpy.savez writes",
                        field="snapshot",
                        value=info.filename,
                    )
            need = int(np.prod(shape, dtype=object)) * dtype.itemsize
            if need > info.file_size:
                raise InvalidArgumentError(
                    f"{where} declares an array of {need} bytes but holds {info.file_size}",
                    field="snapshot",
                    value=info.filename,
                )


def decode(data: bytes) -> tuple[dict[str, Any], Arrays]:
    """Parse a snapshot; raises ``InvalidArgumentError`` for anything that is not one."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidArgumentError(
            "a snapshot is a byte string", field="snapshot", value=type(data).__name__
        )
    if not bytes(data[:4]) == b"PK\x03\x04":  # an npz archive is a zip file
        raise InvalidArgumentError(
            f"not a cdas snapshot: {len(data)} bytes that are not an npz archive",
            field="snapshot",
            value=len(data),
        )
    try:
        check_members(bytes(data))
        with np.load(io.BytesIO(bytes(data)), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        meta = json.loads(arrays.pop("meta").tobytes().decode())
    except (
        OSError,
        ValueError,
        KeyError,
        EOFError,
        TypeError,
        zipfile.BadZipFile,
        UnicodeDecodeError,
    ) as exc:
        raise InvalidArgumentError(
            f"not a cdas snapshot ({type(exc).__name__}: {exc})", field="snapshot", value=len(data)
        ) from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise InvalidArgumentError(
            f"snapshot format {found!r} is not {FORMAT!r}", field="snapshot", value=repr(found)
        )
    return meta, arrays
