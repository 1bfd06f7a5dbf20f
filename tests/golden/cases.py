"""Reference clips that pin the bundled models' sampling maths: a refactor must reproduce them.

Each case is a pipeline call on a bundled model in fp32 with a fixed seed. `python -m
tests.golden.cases` (from the repository root) writes their outputs to `clips.safetensors`;
tests/test_golden.py checks every case against it. Regenerate only when the maths is meant to
change, and say why in the commit.
"""

from __future__ import annotations

from pathlib import Path

import torch

CLIPS = Path(__file__).with_name("clips.safetensors")
PROMPT = "a big red circle moves right and a small blue square moves left"

# name -> (model, keyword arguments of the pipeline call)
CASES: dict[str, tuple[str, dict]] = {
    "diffusion-default": ("shapes-diffusion", dict(num_frames=8, num_inference_steps=6)),
    "diffusion-euler": ("shapes-diffusion", dict(num_frames=8, num_inference_steps=4, sampler="euler")),
    "diffusion-heun": ("shapes-diffusion", dict(num_frames=8, num_inference_steps=3, sampler="heun")),
    "diffusion-dpmpp": ("shapes-diffusion", dict(num_frames=8, num_inference_steps=4, sampler="dpmpp-2m", guidance_scale=1.0)),
    "diffusion-ancestral-i2v": ("shapes-diffusion", dict(num_frames=8, num_inference_steps=4, sampler="euler-ancestral",
                                                          image="first-frame")),
    "hybrid-default": ("shapes-hybrid", dict(num_frames=8, num_inference_steps=4)),
    "hybrid-euler-nocache": ("shapes-hybrid", dict(num_frames=8, num_inference_steps=3, sampler="euler", use_cache=False)),
    "hybrid-pyramid": ("shapes-hybrid", dict(num_frames=8, num_inference_steps=4, schedule="pyramid")),
    "hybrid-full-context": ("shapes-hybrid", dict(num_frames=8, num_inference_steps=3, schedule="full", context_level=0.05)),
    "hybrid-i2v": ("shapes-hybrid", dict(num_frames=8, num_inference_steps=3, image="first-frame")),
    "hybrid-long-window": ("shapes-hybrid", dict(num_frames=24, num_inference_steps=2)),
    # top_k 1: every draw the most likely token, so that a near-tie between two tokens' chances
    # cannot flip a draw (and the rest of the clip) on a CPU that rounds the logits differently;
    # one pass a frame: a pass that keeps only the surest tokens ranks a frame's background tokens,
    # nearly equally sure, by their last bits, which another CPU or thread count reorders
    "ar-set": ("shapes-ar", dict(num_frames=4, num_inference_steps=1, top_k=1)),
    "ar-set-i2v": ("shapes-ar", dict(num_frames=4, num_inference_steps=2, image="first-frame", refine=0)),
    "ar-orders-raster": ("shapes-ar-orders", dict(num_frames=2)),
    "ar-set-diagonal": ("shapes-ar", dict(num_frames=2, decode="diagonal")),
    "ar-raster": ("shapes-ar-raster", dict(num_frames=2, decode="raster")),
    "ar-diagonal": ("shapes-ar-raster", dict(num_frames=2, decode="diagonal")),
}


def first_frame():
    """The first frame of a Shapes clip, as uint8 (H, W, 3): the image the i2v cases start from."""
    from framecast.data.shapes import render_clip

    return render_clip(0).video[0]


def run_case(name: str) -> torch.Tensor:
    """The case's clip as the generator returns it: float32 (T, C, H, W) in [-1, 1], before the
    pipeline rounds it to uint8 (so that small changes of the maths show)."""
    import framecast

    model, kwargs = CASES[name]
    kwargs = dict(kwargs)
    if kwargs.get("image") == "first-frame":
        kwargs["image"] = first_frame()
    pipe = framecast.load(model, device="cpu", precision="fp32")
    if getattr(pipe.model.text, "teacher", None) is not None:  # the clips pin the sampling maths: read the prompt as they were made
        pipe.model.text = pipe.model.text.teacher
    made = []
    generate = pipe.model.generate
    pipe.model.generate = lambda request: made.append(generate(request)) or made[-1]
    pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kwargs)
    return made[-1][0].float()


if __name__ == "__main__":
    from safetensors.torch import save_file

    torch.set_num_threads(2)
    save_file({name: run_case(name).contiguous() for name in CASES}, str(CLIPS))
    print(f"wrote {len(CASES)} clips to {CLIPS}")
