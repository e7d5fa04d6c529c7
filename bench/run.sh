#!/usr/bin/env bash
# make bench: runs every benchmark section against build/. Figures only;
# timing never fails a build (machines here are shared and noisy).
set -u
cd "$(dirname "$0")/.."
export KILN=${KILN:-build/kiln}
export SHARED=${SHARED:-../shared}
for s in bench/ops.sh bench/peers.sh bench/quality.sh bench/api.sh bench/storage_s3.sh bench/queue.sh bench/cluster.sh; do
    bash "$s"
done
