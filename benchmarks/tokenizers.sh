#!/usr/bin/env bash
# The tokenizer table: train the three quantizers' recipes (VQ, LFQ, FSQ: ~1000 codes each, 4x4
# codes a frame) and three larger variants (more codes, or 8x8 codes a frame) side by side, then measure reconstruction PSNR, the
# judge on reconstructions and codebook usage on 200 held-out clips.
#
#   bash benchmarks/tokenizers.sh [RUNS_DIR] [OUTPUT_JSON] [EXTRA --set ARGS...]
#
# The trainings run in parallel (one process each), so on a CPU give them a core each or expect
# them to share; on a GPU they share the device.
set -eu
runs=${1:-runs/tokenizers}
output=${2:-benchmarks/results/tokenizers.json}
shift $(( $# < 2 ? $# : 2 ))
mkdir -p "$runs"
declare -A variants=(
  [vq]="shapes-tokenizer-vq"
  [lfq]="shapes-tokenizer-lfq"
  [fsq]="shapes-tokenizer-fsq"
  [lfq-14bit]="shapes-tokenizer-lfq --set model.generator.bits=14"
  [fsq-64k]="shapes-tokenizer-fsq --set model.generator.levels=[8,8,8,5,5,5]"
  [fsq-8x8]="shapes-tokenizer-fsq --set model.generator.stages=2"
)
for name in "${!variants[@]}"; do
  # shellcheck disable=SC2086
  python3 -m framecast.cli train ${variants[$name]} --set out_dir="$runs/$name" "$@" >"$runs/$name.log" 2>&1 &
done
wait
models=$(for name in vq lfq fsq lfq-14bit fsq-64k fsq-8x8; do printf '%s,' "$runs/$name/model"; done)
python3 benchmarks/codec.py --model "${models%,}" --num "${NUM:-200}" --output "$output"
