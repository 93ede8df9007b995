#!/usr/bin/env bash
# Builds the meshlab image without pulling from a registry: a Debian bookworm base made
# with mmdebstrap (cached as meshlab-base:bookworm), plus the release binaries built here.
# The host must run Debian 12 bookworm or an older glibc, so that the binaries run on the base.
set -euo pipefail

cd "$(dirname "$0")/.."
BASE_IMAGE="${MESHLAB_BASE_IMAGE:-meshlab-base:bookworm}"
IMAGE="${MESHLAB_IMAGE:-meshlab:latest}"

if docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
    echo "Base image $BASE_IMAGE exists, skipping mmdebstrap"
else
    if ! command -v mmdebstrap >/dev/null 2>&1; then
        apt-get update
        apt-get install -y mmdebstrap
    fi
    workdir="$(mktemp -d)"
    trap 'rm -rf "$workdir"' EXIT
    mmdebstrap --variant=apt --include=ca-certificates,curl bookworm "$workdir/rootfs.tar"
    docker import "$workdir/rootfs.tar" "$BASE_IMAGE"
fi

if [ "${SKIP_CARGO_BUILD:-0}" != 1 ]; then
    cargo build --release -p mesh -p services -p loadgen
fi

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/bin"
for binary in meshctl bookinfo loadgen; do
    cp "target/release/$binary" "$context/bin/"
    # The release profile keeps line tables for profiling; the image does not need them.
    strip --strip-debug "$context/bin/$binary" 2>/dev/null || true
done
cp docker/lab-init.sh "$context/"
cp -r scenarios "$context/"
docker build -f docker/Dockerfile.local --build-arg "BASE_IMAGE=$BASE_IMAGE" -t "$IMAGE" "$context"
echo "Built $IMAGE"
