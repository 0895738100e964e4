#!/usr/bin/env bash
# Build the splitnet image with no registry and no package index (air-gapped clusters):
#  - the base image comes from the machine's own Debian package sources (mmdebstrap | docker import)
#    unless BASE_IMAGE names one that is already present;
#  - Python packages come from a local wheelhouse (pip download, done here while an index is
#    reachable, or copied in beforehand: SKIP_DOWNLOAD=1 uses ./wheelhouse's dependencies as
#    they are; splitnet's own wheel is always rebuilt from this checkout).
# Usage: scripts/build-image.sh [IMAGE]   (default splitnet:local)
set -euo pipefail
cd "$(dirname "$0")/.."
IMAGE=${1:-${SPLITNET_IMAGE:-splitnet:local}}
BASE=${BASE_IMAGE:-splitnet-base:bookworm}
PY=${PY:-.venv/bin/python}
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
    if [ "$BASE" != "splitnet-base:bookworm" ]; then
        echo "base image $BASE is not present and cannot be pulled offline" >&2
        exit 2
    fi
    echo "making base image $BASE from the Debian package sources (mmdebstrap)..."
    mmdebstrap --quiet --variant=apt --include=python3,python3-venv,iproute2,util-linux,ca-certificates \
        bookworm - | docker import - "$BASE"
fi
mkdir -p wheelhouse
rm -f wheelhouse/splitnet-*.whl
rm -rf build
$PY -m pip wheel --quiet --no-deps --wheel-dir wheelhouse .
if [ -z "${SKIP_DOWNLOAD:-}" ]; then
    $PY - <<'PYEOF' > wheelhouse/requirements.txt
import tomllib
print("\n".join(tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]))
PYEOF
    $PY -m pip download --quiet --only-binary=:all: --python-version 3.11 \
        --platform manylinux_2_28_x86_64 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
        --dest wheelhouse -r wheelhouse/requirements.txt
fi
DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0} docker build --quiet --build-arg BASE_IMAGE="$BASE" -t "$IMAGE" . 
docker image inspect "$IMAGE" --format "built $IMAGE: {{.Size}} bytes"
