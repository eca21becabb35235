"""Generates Python stubs (and mypy type stubs) for every proto under protos/ into gen/.

Reproducible: gen/ is wiped and rebuilt from the pinned grpcio-tools and mypy-protobuf.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import google.type.date_pb2
from grpc_tools import protoc

TOP = Path(__file__).resolve().parent.parent
PROTOS = TOP / "protos"
GEN = TOP / "gen"


def main() -> int:
    googleapis = Path(google.type.date_pb2.__file__).resolve().parent.parent.parent
    wkt = Path(protoc.__file__).resolve().parent / "_proto"
    bindir = Path(sys.executable).parent
    files = sorted(str(p.relative_to(PROTOS)) for p in PROTOS.rglob("*.proto"))
    if GEN.exists():
        shutil.rmtree(GEN)
    GEN.mkdir()
    args = [
        "protoc",
        f"-I{PROTOS}",
        f"-I{googleapis}",
        f"-I{wkt}",
        f"--plugin=protoc-gen-mypy={bindir / 'protoc-gen-mypy'}",
        f"--plugin=protoc-gen-mypy_grpc={bindir / 'protoc-gen-mypy_grpc'}",
        f"--python_out={GEN}",
        f"--grpc_python_out={GEN}",
        f"--mypy_out={GEN}",
        f"--mypy_grpc_out={GEN}",
        *files,
    ]
    code = protoc.main(args)
    if code != 0:
        print("protoc failed", file=sys.stderr)
        return code
    print(f"generated stubs for {len(files)} protos into {GEN.relative_to(TOP)}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
