"""The Wan 2.1 VAE at full size (base_dim 96, z_dim 16, random weights): seconds to encode and
decode a clip, and peak memory of decoding it in one pass vs chunk by chunk (the streaming decoder).

    python benchmarks/wan_vae.py --frames 33 --size 256 --threads 1 --output benchmarks/results/wan_vae.json
    python benchmarks/wan_vae.py --device cuda --frames 81 --height 480 --width 832

Each measurement runs in its own process, so one's peak does not hide another's. On the CPU the
peak is the resident set size sampled every 5 ms, less the size before the call (model and input
already in memory); on CUDA it is `torch.cuda.max_memory_allocated` less the memory before the call.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch

from framecast.codecs import WanVAE, WanVAEConfig


def _rss_bytes() -> int:
    return int(Path("/proc/self/statm").read_text().split()[1]) * 4096


class PeakMemory:
    """Peak memory of a block above what was in use when it began (CPU: sampled RSS; CUDA: allocator)."""

    def __init__(self, device: str):
        self.device, self.peak, self._stop = device, 0, threading.Event()

    def _sample(self):
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, _rss_bytes() - self.base)

    def __enter__(self):
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            self.base = _rss_bytes()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc):
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self.base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self.peak, _rss_bytes() - self.base)


def measure(args) -> dict:
    """One measurement (`args.what`) in this process."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    vae = WanVAE(WanVAEConfig()).eval().to(args.device, dtype)
    x = (torch.rand(1, args.frames, 3, args.height, args.width) * 2 - 1).to(args.device, dtype)
    shape = (1, vae.latent_frames(args.frames), vae.latent_channels, args.height // 8, args.width // 8)
    z = torch.randn(shape).to(args.device, dtype)  # normalised latents are about N(0, 1)
    with torch.no_grad():
        with PeakMemory(args.device) as mem:
            t0 = time.perf_counter()
            if args.what == "encode":
                vae.encode(x)
            else:
                vae.decode(z, chunk_frames=None if args.what == "decode-whole" else args.chunk)
            if args.device == "cuda":
                torch.cuda.synchronize()
            seconds = time.perf_counter() - t0
    return {"what": args.what, "seconds": round(seconds, 2), "peak_mib": round(mem.peak / 2**20, 1)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--frames", type=int, default=33)
    p.add_argument("--size", type=int, default=256, help="height and width unless given apart")
    p.add_argument("--height", type=int)
    p.add_argument("--width", type=int)
    p.add_argument("--chunk", type=int, default=1, help="latent frames per chunk of the chunked decode")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    p.add_argument("--what", help=argparse.SUPPRESS)
    p.add_argument("--output", type=Path)
    args = p.parse_args()
    args.height, args.width = args.height or args.size, args.width or args.size
    if args.what:
        print(json.dumps(measure(args)))
        return
    rows = []
    for what in ("encode", "decode-whole", "decode-chunked"):
        cmd = [sys.executable, __file__, *sys.argv[1:], "--what", what]
        rows.append(json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    report = {"clip": [args.frames, args.height, args.width], "device": args.device, "dtype": args.dtype,
              "threads": args.threads, "chunk_latent_frames": args.chunk, "rows": rows}
    if args.output:
        args.output.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
