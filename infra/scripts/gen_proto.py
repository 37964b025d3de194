"""Generate Python, gRPC and mypy stubs from proto/ into libs/modelog/_gen/.

protoc writes absolute imports (`from modelog.common.v1 import common_pb2`) that would resolve to
the SDK package itself; we generate into a scratch directory and rewrite them to `modelog._gen.*`.
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

import grpc_tools
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "libs" / "modelog" / "_gen"
IMPORT_RE = re.compile(r"^(from|import) modelog\.", re.MULTILINE)


def main() -> int:
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    well_known = str(Path(grpc_tools.__file__).parent / "_proto")
    with tempfile.TemporaryDirectory() as tmp:
        args = [
            "protoc",
            f"-I{PROTO_DIR}",
            f"-I{well_known}",
            f"--python_out={tmp}",
            f"--grpc_python_out={tmp}",
            f"--mypy_out={tmp}",
            f"--mypy_grpc_out={tmp}",
            *protos,
        ]
        if protoc.main(args) != 0:
            print("protoc failed", file=sys.stderr)
            return 1
        if OUT_DIR.exists():
            shutil.rmtree(OUT_DIR)
        shutil.copytree(Path(tmp) / "modelog", OUT_DIR)
    for path in OUT_DIR.rglob("*.py*"):
        text = path.read_text()
        path.write_text(IMPORT_RE.sub(r"\1 modelog._gen.", text))
    for d in [OUT_DIR, *[p for p in OUT_DIR.rglob("*") if p.is_dir()]]:
        (d / "__init__.py").touch()
    (OUT_DIR / ".generated").touch()
    print(f"generated stubs for {len(protos)} proto files into {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
