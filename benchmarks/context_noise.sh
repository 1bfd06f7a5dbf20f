#!/usr/bin/env bash
# Does context-noise augmentation (diffusion forcing's noisy context in training) reduce drift
# over long streamed clips? Train the shapes-hybrid-small recipe twice, identical but for
# context_noise (0.1, the recipe, and 0), then stream 256 frames from each and judge frames
# 1-16, 113-128 and 241-256.
#
#   bash benchmarks/context_noise.sh [RUNS_DIR] [OUT_DIR] [EXTRA --set ARGS...]
#
# Both runs start from the bundled shapes-diffusion (init_from), as the recipe does. On this
# repository's 2-core CPU each run takes ~35 minutes; on a GPU they run side by side in minutes.
set -eu
runs=${1:-runs/context-noise}
out=${2:-benchmarks/results}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$runs" "$out"
for cn in 0.1 0; do
  python3 -m framecast.cli train shapes-hybrid-small --set model.generator.context_noise=$cn --set out_dir="$runs/context-noise-$cn" "$@" >"$runs/context-noise-$cn.log" 2>&1 &
done
wait
for cn in 0.1 0; do
  python3 benchmarks/stream.py --model "$runs/context-noise-$cn/model" --frames 256 --num "${NUM:-10}" \
    --output "$out/stream-context-noise-$cn.json" &
done
wait
