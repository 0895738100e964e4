#!/usr/bin/env bash
# Make sure a Docker engine is installed and running (Debian, as root). Used by CI and tests.
set -euo pipefail
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker-compose >/dev/null 2>&1 \
        || ! command -v mmdebstrap >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker.io docker-compose mmdebstrap >/dev/null
fi
if ! docker info >/dev/null 2>&1; then
    nohup dockerd >/tmp/splitnet-dockerd.log 2>&1 &
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && break
        sleep 1
    done
fi
docker info --format 'docker engine {{.ServerVersion}} ready' 
