#!/usr/bin/env bash
# The CUDA check, in one run (about 6 minutes on an H200): the test suite with a GPU present (load's
# default device is then the GPU), sampling throughput of every bundled model at batch 1/16/64,
# streaming 256 frames, training steps per second at two batch sizes, and torchrun with NCCL.
#
#   bash benchmarks/gpu_check.sh OUT_DIR
#
# Needs PyTorch with CUDA and framecast's requirements; without PyAV only the tests that write .mp4 fail.
set -u
out=${1:-gpu-check}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH=$PWD${PYTHONPATH:+:$PYTHONPATH}
log="$out/summary.log"
step() { echo "== $1 (rc $2, $3 s)" | tee -a "$log"; }

{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(), 'cuda', torch.version.cuda)"; } >>"$log" 2>&1

t=$SECONDS; OMP_NUM_THREADS=1 timeout 240 python3 -m pytest -q -p no:cacheprovider -n 6 tests >"$out/pytest.log" 2>&1
step "tests" $? $((SECONDS - t)); tail -3 "$out/pytest.log" >>"$log"

t=$SECONDS; timeout 150 python3 benchmarks/throughput.py --device cuda --batch-sizes 1,16,64 --output "$out/throughput.json" >>"$log" 2>&1
step "throughput" $? $((SECONDS - t))

t=$SECONDS; timeout 100 python3 benchmarks/stream.py --device cuda --frames 256 --num 4 --output "$out/stream.json" >>"$log" 2>&1
step "stream" $? $((SECONDS - t))

for bs in 16 128; do
  t=$SECONDS; timeout 100 python3 -m framecast.cli train shapes-diffusion-small --set steps=300 --set batch_size=$bs \
    --set data.latent_pool=4000 --set out_dir=/tmp/gpu-train-$bs --set ckpt_every=1000 >/tmp/train-$bs.log 2>&1
  step "train batch $bs" $? $((SECONDS - t))
  tail -1 /tmp/gpu-train-$bs/log.jsonl >>"$log"
done

t=$SECONDS; timeout 60 python3 -m torch.distributed.run --standalone --nproc_per_node 1 -m framecast.cli train shapes-diffusion-tiny --set steps=20 \
  --set out_dir=/tmp/gpu-ddp >/tmp/ddp.log 2>&1
step "torchrun nccl" $? $((SECONDS - t)); tail -2 /tmp/ddp.log >>"$log"
