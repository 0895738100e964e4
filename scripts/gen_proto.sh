#!/usr/bin/env bash
# Regenerate splitnet/transport/generated/ from splitnet/transport/splitnet.proto.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
out=splitnet/transport/generated
$PY -m grpc_tools.protoc -I splitnet/transport --python_out=$out --grpc_python_out=$out \
    --pyi_out=$out splitnet/transport/splitnet.proto
# Generated code imports its sibling as a top-level module; make it a package import.
sed -i 's/^import splitnet_pb2 as/from splitnet.transport.generated import splitnet_pb2 as/' \
    $out/splitnet_pb2_grpc.py
touch $out/__init__.py
