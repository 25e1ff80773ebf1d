"""Generate the Python code of proto/cdas/v1/*.proto into services/coordinator/cdas/v1/.

One command (``make proto``) writes the messages (``*_pb2.py``), their type stubs (``*_pb2.pyi``)
and the service stubs (``*_pb2_grpc.py``). ``--check`` generates into a temporary folder and fails
when the committed files differ (tests/test_proto.py runs it).

Needs grpcio-tools (a test dependency, not a runtime one).
"""

from __future__ import annotations

import argparse
import filecmp
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "services" / "coordinator"
PACKAGE = Path("cdas") / "v1"
GENERATED = ("coordinator_pb2.py", "coordinator_pb2.pyi", "coordinator_pb2_grpc.py")


def generate(out_root: Path) -> None:
    import grpc_tools
    from grpc_tools import protoc

    include = Path(grpc_tools.__file__).parent / "_proto"
    (out_root / PACKAGE).mkdir(parents=True, exist_ok=True)
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE).glob("*.proto"))
    code = protoc.main(
        [
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            f"-I{include}",
            f"--python_out={out_root}",
            f"--pyi_out={out_root}",
            f"--grpc_python_out={out_root}",
            *protos,
        ]
    )
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def stale() -> list[str]:
    """The generated files that differ from what the .proto files generate now."""
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        return [
            name
            for name in GENERATED
            if not (OUT_ROOT / PACKAGE / name).exists()
            or not filecmp.cmp(Path(tmp) / PACKAGE / name, OUT_ROOT / PACKAGE / name, shallow=False)
        ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="fail when the committed code is stale"
    )
    args = parser.parse_args()
    if args.check:
        names = stale()
        if names:
            print(f"stale generated code: {', '.join(names)}; run `make proto`", file=sys.stderr)
            return 1
        print("generated code is up to date")
        return 0
    generate(OUT_ROOT)
    print(f"wrote {', '.join(str(PACKAGE / n) for n in GENERATED)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
