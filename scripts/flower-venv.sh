#!/usr/bin/env bash
# Make .venv-flower: Flower (flwr) for `splitnet bench`'s Flower row, apart from .venv because
# their pins clash (flwr wants protobuf<7, splitnet's gRPC code protobuf>=7.35).
#
# - torch is pinned to splitnet's version (never unpinned: an unpinned torch pulls CUDA wheels
#   of several GiB); the CPU build where pip's wheel folder holds it, as for .venv;
# - flwr is installed --no-deps, then its own requirements (read from its metadata, extras left
#   out) with certifi pinned to the newest release the index has (flwr 1.42 asks for a newer one;
#   certifi is a CA bundle, any recent one serves loopback; pip is told not to warn about it);
# - splitnet itself --no-deps (editable), with what its learning code imports: numpy,
#   safetensors, scikit-learn, python-dotenv.
#
# Usage: scripts/flower-venv.sh [VENV]   (default .venv-flower; PYTHON picks the interpreter)
# About 80-105 s on a fresh machine here (2 cores, torch from the local wheel folder).
# Re-running is cheap: a venv whose stamp is newer than this script is left as it is.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV="${1:-.venv-flower}"
PYTHON="${PYTHON:-python3}"
STAMP="$VENV/.installed"
FLWR=1.42.0
TORCH=2.13.0
CERTIFI=2026.10.18
if [[ -f "$STAMP" && "$STAMP" -nt "$0" ]]; then
    echo "flower-venv: $VENV is up to date"
    exit 0
fi
test -x "$VENV/bin/python" || "$PYTHON" -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet)
"${PIP[@]}" "torch==$TORCH"  # the +cpu build where the wheel folder has it (it sorts first)
"${PIP[@]}" --no-deps "flwr==$FLWR"
mapfile -t REQUIRES < <("$VENV/bin/python" - "$CERTIFI" <<'EOF'
import re
import sys
from importlib.metadata import requires

for line in requires("flwr") or []:
    if "extra ==" in line:
        continue
    name = re.match(r"[A-Za-z0-9_.\-\[\]]+", line).group(0)
    print(f"certifi=={sys.argv[1]}" if name.lower() == "certifi" else line.split(";")[0].strip())
EOF
)
"${PIP[@]}" --no-warn-conflicts "${REQUIRES[@]}" "torch==$TORCH" numpy safetensors scikit-learn python-dotenv
"${PIP[@]}" --no-deps --no-warn-conflicts -e .
"$VENV/bin/python" -c "import flwr, torch, splitnet.learning.data; print('flower-venv: flwr', \
flwr.__version__, 'torch', torch.__version__)"
touch "$STAMP"
