"""A video request as the API takes it, and its check against the model before it is queued.

The body is the CLI's `generate` options as JSON. It is checked here by building the pipeline's
request without running it, so a bad request is answered at once with the sentence the CLI prints,
and a job that is queued is one the model will run.
"""

from __future__ import annotations

import base64
import binascii
import io
import tempfile
from pathlib import Path
from typing import Literal, Optional

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

MAX_PROMPT_CHARS = 500
MAX_FRAMES = 256
MAX_STEPS = 1000
MAX_SWITCHES = 16  # prompt changes in one stream
FORMATS = {"mp4": "video/mp4", "gif": "image/gif", "npy": "application/octet-stream"}


class PromptSwitch(BaseModel):
    """From video frame `frame` on, the clip follows `prompt` (hybrid models; `framecast generate --prompt-at`)."""

    model_config = ConfigDict(extra="forbid")

    frame: int
    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS)


class VideoRequest(BaseModel):
    """`POST /v1/videos`: None means the model's default, as in `framecast generate`."""

    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS)
    model: str = "shapes-diffusion"
    num_frames: Optional[int] = Field(None, le=MAX_FRAMES)  # > 0 is the pipeline's check, in its words
    num_inference_steps: Optional[int] = Field(None, le=MAX_STEPS)
    guidance_scale: Optional[float] = Field(None, ge=0, le=100)
    seed: int = Field(0, ge=0, lt=2**63)
    negative_prompt: Optional[str] = Field(None, max_length=MAX_PROMPT_CHARS)
    sampler: Optional[str] = None
    sigmas: Optional[list[float]] = Field(None, max_length=MAX_STEPS, description="diffusion and hybrid models: the noise levels "
                                          "of the steps, highest first, e.g. [1.0, 0.75, 0.5, 0.25] (they set num_inference_steps)")
    schedule: Optional[str] = None
    decode: Optional[str] = None
    image: Optional[str] = Field(None, description="first frame to start from: a PNG or JPEG, base64 (a data: URL is accepted)")
    video: Optional[str] = Field(None, description="clip to continue: an mp4 or gif, base64")
    context_frames: Optional[int] = None
    prompt_at: Optional[list[PromptSwitch]] = Field(None, max_length=MAX_SWITCHES)  # frames are checked by the pipeline
    recache: Optional[bool] = None
    step_cache: Optional[float] = Field(None, description="diffusion and hybrid models: skip a step's later blocks when the first "
                                       "block's residual changed less than this (e.g. 0.1; 0 is off)")
    first_steps: Optional[int] = Field(None, le=MAX_STEPS, description="hybrid models: steps of the first frame when nothing comes "
                                       "before it (default: the model's; 0: num_inference_steps)")
    format: Literal["mp4", "gif", "npy"] = "mp4"
    fps: int = Field(8, gt=0, le=60)


def _bytes(data: str, what: str) -> bytes:
    if data.startswith("data:"):
        data = data.split(",", 1)[-1]
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"the {what} is not valid base64; send the file's bytes base64-encoded") from None


def decode_image(data: str) -> np.ndarray:
    """A base64 PNG/JPEG -> (H, W, 3) uint8; anything that is not an image is a plain error."""
    from PIL import Image, UnidentifiedImageError

    raw = _bytes(data, "image")
    try:
        with Image.open(io.BytesIO(raw)) as probe:
            probe.verify()  # checks the file's structure without decoding all of it
        with Image.open(io.BytesIO(raw)) as img:
            return np.array(img.convert("RGB"))
    except (UnidentifiedImageError, OSError, SyntaxError):
        raise ValueError("the image is not a readable PNG or JPEG; upload a picture file") from None


def decode_video(data: str) -> np.ndarray:
    """A base64 mp4/gif -> (T, H, W, 3) uint8."""
    from framecast.video import read_video

    raw = _bytes(data, "video")
    kind = ".gif" if raw[:4] == b"GIF8" else ".mp4"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"clip{kind}"
        path.write_bytes(raw)
        try:
            return read_video(path)
        except Exception:  # the reader's message names a temporary file the client never saw
            raise ValueError("the video is not a readable mp4 or gif; upload a clip file") from None


def pipeline_kwargs(req: VideoRequest) -> dict:
    """The request as the keywords of `pipe(prompt, ...)` (without the generator and callback)."""
    kw = dict(negative_prompt=req.negative_prompt, num_frames=req.num_frames, num_inference_steps=req.num_inference_steps,
              guidance_scale=req.guidance_scale)
    for option in ("sampler", "sigmas", "schedule", "decode"):
        if getattr(req, option) is not None:
            kw[option] = getattr(req, option)
    if req.image is not None:
        kw["image"] = decode_image(req.image)
    if req.video is not None:
        kw["video"] = decode_video(req.video)
    if req.context_frames is not None:
        kw["context_frames"] = req.context_frames
    if req.prompt_at is not None:
        kw["prompt_at"] = [(s.frame, s.prompt) for s in req.prompt_at]
    if req.recache is not None:
        kw["recache"] = req.recache
    if req.step_cache is not None:
        kw["step_cache"] = req.step_cache  # checked by the pipeline, in its words
    if req.first_steps is not None:
        kw["first_steps"] = req.first_steps
    return kw


def check_request(pipe, req: VideoRequest) -> None:
    """Raise ValueError with the pipeline's sentence if the model would refuse the request."""
    pipe.check(req.prompt, **pipeline_kwargs(req))
