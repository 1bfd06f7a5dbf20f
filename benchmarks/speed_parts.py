"""The measurements of the speed ledger (benchmarks/speed.py): the matmul peak, a model's clip,
stream and memory, framecast's denoising step against diffusers' WanTransformer3DModel with where
the time goes, and one generation beside a busy neighbour process. Each model and each thread
setting runs in a fresh process, so peak memory and thread pools do not mix."""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import statistics
import time
from concurrent.futures import ProcessPoolExecutor

import torch
from backbone import matmul_peak
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

PROMPT = "a big red circle moves right"


def cpu_sdpa_flops(query, key, value, *args, **kwargs) -> int:
    """FLOPs of PyTorch's CPU attention kernel, which flop_counter does not know: the same count as
    its GPU kernels (two matmuls of the full score matrix, masked or not)."""
    return sdpa_flop_count(query, key, value)


FLOP_FORMULAS = {torch.ops.aten._scaled_dot_product_flash_attention_for_cpu: cpu_sdpa_flops}


def in_own_process(fn, *args):
    """fn(*args) in a fresh spawned process (its own peak memory, thread pool and start-up)."""
    with ProcessPoolExecutor(max_workers=1, mp_context=mp.get_context("spawn")) as ex:
        return ex.submit(fn, *args).result()


def peaks(precisions: list[str], fast_bf16: bool, tries: int = 3) -> dict:
    """Best of `tries` of a large square matmul, GFLOP/s, per precision. Without bf16 kernels a
    bf16 matmul is emulated (hundreds of times slower), so it is measured on a 512 x 512 one."""
    out = {}
    for p in precisions:
        n, repeats = (512, 1) if p == "bf16" and not fast_bf16 else (2048, 5)
        out[p] = max(matmul_peak(p, n=n, repeats=repeats) for _ in range(tries))
    return out


def _autocast(precision: str):
    from framecast.precision import autocast

    return autocast(precision, "cpu")


def measure_model(name: str, precision: str, threads: int, repeats: int, stream_frames: int) -> dict:
    """One model in one precision: seconds per clip (median of `repeats`), the backbone's FLOPs over
    one generation, streaming frames per second and time to the first frame, peak resident memory."""
    torch.set_num_threads(threads)
    from framecast.eval.arena import memory_mb
    from framecast.pipeline import load

    pipe = load(name, device="cpu", precision=precision)
    pipe.model.requires_grad_(False)  # inference only; flop_counter's module tracker needs it
    gen = lambda: pipe(PROMPT, generator=torch.Generator().manual_seed(0))  # noqa: E731
    with FlopCounterMode(display=False, depth=1, custom_mapping=FLOP_FORMULAS) as counter:
        frames = gen().frames[0].shape[0]  # also the warm-up
    counts = counter.get_flop_counts()
    backbone = sum(counts.get(type(pipe.model.backbone).__name__, {}).values())
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        gen()
        times.append(time.perf_counter() - t)
    seconds = statistics.median(times)
    row = {"model": pipe.name, "family": pipe.model.family, "precision": pipe.precision, "threads": threads,
           "frames": frames, "s_per_clip": seconds, "backbone_gflop": backbone / 1e9,
           "total_gflop": sum(counts.get("Global", {}).values()) / 1e9, "backbone_gflop_per_s": backbone / seconds / 1e9}
    if hasattr(pipe.model, "stream"):
        runs = [stream(pipe, stream_frames, seed) for seed in range(repeats)]
        row.update({k: statistics.median(r[k] for r in runs) for k in runs[0]})
    row["peak_rss_mb"] = memory_mb("cpu", peak=True)
    return row


def stream(pipe, frames: int, seed: int = 0) -> dict:
    """Frames per second over a streamed clip of `frames` and the wait for its first frame (the
    caller takes the median of several, after a warm-up)."""
    t = time.perf_counter()
    first, n = None, 0
    for chunk in pipe.stream(PROMPT, num_frames=frames, generator=torch.Generator().manual_seed(seed)):
        first = time.perf_counter() - t if first is None else first
        n += chunk.shape[0]
    return {"stream_frames": n, "stream_fps": n / (time.perf_counter() - t), "first_frame_s": first}


# --- framecast's denoising step against diffusers' ----------------------------------------------
def wan_twin(config):
    """diffusers' WanTransformer3DModel with framecast's backbone's width, depth, heads, patch and
    MLP sizes and text width (random weights: the speed of a step does not depend on them)."""
    from diffusers import WanTransformer3DModel

    torch.manual_seed(0)
    return WanTransformer3DModel(patch_size=(config.patch_frames, config.patch_size, config.patch_size),
                                 num_attention_heads=config.heads, attention_head_dim=config.width // config.heads,
                                 in_channels=config.channels, out_channels=config.channels, text_dim=config.context_width,
                                 ffn_dim=int(config.width * config.mlp_ratio), num_layers=config.depth).eval().requires_grad_(False)


def step_inputs(name: str):
    """shapes-diffusion's backbone and one guided denoising step's inputs: [prompt; empty prompt]."""
    from framecast.pipeline import load
    from framecast.text.encoder import TextEmbedding

    pipe = load(name, device="cpu", precision="fp32")
    model = pipe.model.eval().requires_grad_(False)
    T, size = model.config.frames, model.config.size
    with torch.no_grad():
        latent = model.to_latent(torch.zeros(1, T, 3, size, size))
        text = TextEmbedding.cat([model.text.encode([PROMPT]), model.text.encode_null(1)])
    x_BTCHW = torch.randn((2, *latent.shape[1:]), generator=torch.Generator().manual_seed(0))
    return model.backbone, x_BTCHW, text


def _labelled(parts: dict[str, list]):
    """Forward hooks that open a profiler range named `label` around each listed module."""
    handles = []
    for label, modules in parts.items():
        for m in modules:
            ranges = []
            handles.append(m.register_forward_pre_hook(lambda *_, r=ranges, n=label: r.append(torch.profiler.record_function(n).__enter__())))
            handles.append(m.register_forward_hook(lambda *_, r=ranges: r.pop().__exit__(None, None, None)))
    return handles


def breakdown(fn, parts: dict[str, list], reps: int = 3) -> dict:
    """Share of a step's time in each labelled group of modules (torch.profiler's CPU time of the
    ranges), `block` being the whole blocks: modulation and norms are the blocks less their parts,
    `other` is everything outside the blocks (embeddings, conditioning, readout)."""
    handles = _labelled(parts)
    try:
        fn()
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            t = time.perf_counter()
            for _ in range(reps):
                fn()
            total_us = (time.perf_counter() - t) * 1e6
    finally:
        for h in handles:
            h.remove()
    us = {e.key: e.cpu_time_total for e in prof.key_averages() if e.key in parts}
    inside = sum(us.get(k, 0.0) for k in parts if k != "block")
    shares = {k: us.get(k, 0.0) / total_us for k in parts if k != "block"}
    shares["modulation and norms"] = max(0.0, us.get("block", 0.0) - inside) / total_us
    shares["other"] = max(0.0, 1.0 - us.get("block", 0.0) / total_us)
    return shares


def step_against_wan(name: str, precision: str, threads: int, reps: int) -> dict:
    """Seconds per denoising step of framecast's backbone and of its diffusers twin, taking turns
    (benchmarks/wan.py `medians`), and where each spends the time."""
    torch.set_num_threads(threads)
    from wan import medians

    backbone, x_BTCHW, text = step_inputs(name)
    twin = wan_twin(backbone.config)
    x_BCTHW, level, timestep = x_BTCHW.transpose(1, 2).contiguous(), torch.full((2,), 0.5), torch.full((2,), 500.0)

    def ours():
        with torch.no_grad(), _autocast(precision):
            backbone(x_BTCHW, level, text)

    def theirs():
        with torch.no_grad(), _autocast(precision):
            twin(x_BCTHW, timestep, text.tokens_BLD, return_dict=False)

    times = medians({"framecast": ours, "diffusers": theirs}, reps, "cpu")
    blocks = list(backbone.blocks)
    ours_parts = {"block": blocks, "self-attention": [b.attn for b in blocks], "cross-attention": [b.cross for b in blocks],
                  "MLP": [b.mlp for b in blocks]}
    theirs_parts = {"block": list(twin.blocks), "self-attention": [b.attn1 for b in twin.blocks],
                    "cross-attention": [b.attn2 for b in twin.blocks], "MLP": [b.ffn for b in twin.blocks]}
    N = backbone.grid(x_BTCHW.shape[1], *x_BTCHW.shape[3:])
    return {"precision": precision, "threads": threads, "tokens": N[0] * N[1] * N[2], "batch": 2,
            "text_tokens": text.tokens_BLD.shape[1], "width": backbone.config.width, "depth": backbone.config.depth,
            "heads": backbone.config.heads, "framecast_s": times["framecast"], "diffusers_s": times["diffusers"],
            "framecast_breakdown": breakdown(ours, ours_parts), "diffusers_breakdown": breakdown(theirs, theirs_parts)}


# --- threads beside a busy neighbour --------------------------------------------------------------
def spin(ready, stop) -> None:
    """The neighbour: one thread of matmuls until told to stop."""
    torch.set_num_threads(1)
    a = torch.randn(512, 512)
    ready.set()
    while not stop.is_set():
        a = (a @ a).clamp_(-1, 1)


class Neighbour:
    """A busy process beside the measurement while the `with` block runs."""

    def __enter__(self):
        ctx = mp.get_context("spawn")
        self.ready, self.stop = ctx.Event(), ctx.Event()
        self.process = ctx.Process(target=spin, args=(self.ready, self.stop), daemon=True)
        self.process.start()
        self.ready.wait(60)
        time.sleep(0.5)  # its load shows in /proc/stat
        return self

    def __exit__(self, *exc):
        self.stop.set()
        self.process.join(10)
        if self.process.is_alive():
            self.process.terminate()


def one_generation(name: str, threads: int | None, steps: int, repeats: int) -> dict:
    """Seconds of one generation with `threads` (None: framecast's own choice, framecast.threads)."""
    from framecast.pipeline import load
    from framecast.threads import choose_threads

    n, source = choose_threads(threads)
    torch.set_num_threads(n)
    pipe = load(name, device="cpu")
    pipe(PROMPT, num_inference_steps=1, generator=torch.Generator().manual_seed(0))  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        pipe(PROMPT, num_inference_steps=steps, generator=torch.Generator().manual_seed(0))
        times.append(time.perf_counter() - t)
    return {"threads": n, "chosen_by": source, "s": statistics.median(times)}


def _with_env(key: str, value: str | None, fn, *args):
    """fn(*args) in its own process with the environment variable `key` set (None: as it is);
    OpenMP reads its settings when PyTorch is first imported, so they go to a fresh process."""
    import os

    before = os.environ.get(key)
    if value is not None:
        os.environ[key] = value
    try:
        return in_own_process(fn, *args)
    finally:
        if before is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = before


def thread_rows(name: str, steps: int, repeats: int, cores: int) -> list[dict]:
    """One generation alone and beside a neighbour, with 1 thread, every core, the policy, and
    every core with OpenMP's passive waits (threads sleep at a barrier instead of spinning)."""
    rows = []
    for busy in (False, True):
        for threads, waits in ((1, None), (cores, None), (None, None), (cores, "PASSIVE")):
            with Neighbour() if busy else contextlib.nullcontext():
                r = _with_env("OMP_WAIT_POLICY", waits, one_generation, name, threads, steps, repeats)
            rows.append({"neighbour": busy, "omp_wait_policy": waits or "default", **r})
            print(f"threads {r['threads']} ({r['chosen_by']}, OpenMP waits {waits or 'default'}), "
                  f"{'beside a busy process' if busy else 'alone'}: {r['s']:.2f} s", flush=True)
    return rows
