"""The page's Generate tab behind the widgets: a request built from the form goes through the
server's queue (`Server.submit`, the same check and limits as `POST /v1/videos`), and the page
follows the job's events: progress per step, frames as they are made, the clip when it is done."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
from pydantic import ValidationError

from framecast.serve.jobs import FINISHED, QueueFull
from framecast.serve.request import VideoRequest

DEFAULT = "model default"


def _b64_png(image_HW3: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.asarray(image_HW3, dtype=np.uint8)[..., :3]).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def prompt_switches(text: str | None) -> list[dict] | None:
    """The form's prompt switches, one a line as `FRAME: PROMPT` (`--prompt-at FRAME:PROMPT`) ->
    the API's `prompt_at` (None when there are none)."""
    from framecast.generators.prompt_at import parse_switch

    pairs = [parse_switch(line.strip(), "prompt switch", "one a line as FRAME: PROMPT", "'24: a big red circle moves up'")
             for line in (text or "").splitlines() if line.strip()]
    return [{"frame": frame, "prompt": prompt} for frame, prompt in pairs] or None


def noise_levels(text: str | None) -> list[float] | None:
    """The form's noise levels, "1, 0.75, 0.5, 0.25" (commas or spaces), as the API's `sigmas`
    (None when empty; the pipeline checks that they fall within (0, 1])."""
    words = (text or "").replace(",", " ").split()
    try:
        return [float(w) for w in words] or None
    except ValueError:
        raise ValueError("noise levels: give numbers separated by commas, highest first, e.g. 1, 0.75, 0.5, 0.25") from None


def form_request(prompt, model, sampler, steps, guidance, seed, frames, schedule, decode, image, video, context_frames,
                 switches=None, levels=None) -> VideoRequest:
    """The form's values as an API request (ValueError with a sentence where one is wrong). Noise
    levels, when given, set the steps: the steps box (the model's default) is then left out."""
    def given(v):
        return None if v in (None, "", DEFAULT) else v

    sigmas = noise_levels(levels)
    fields = dict(prompt=prompt or "", model=model, seed=int(seed or 0), format="mp4", sigmas=sigmas,
                  num_inference_steps=int(steps) if given(steps) and sigmas is None else None, guidance_scale=given(guidance),
                  num_frames=int(frames) if given(frames) else None, sampler=given(sampler), schedule=given(schedule),
                  decode=given(decode), context_frames=int(context_frames) if given(context_frames) else None,
                  prompt_at=prompt_switches(switches))
    if image is not None:
        fields["image"] = _b64_png(image)
    if video:
        fields["video"] = base64.b64encode(Path(video).read_bytes()).decode()
    try:
        return VideoRequest(**fields)
    except ValidationError as e:
        first = e.errors()[0]
        raise ValueError(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None


def _strip(png_b64: str) -> np.ndarray:
    from PIL import Image

    return np.array(Image.open(io.BytesIO(base64.b64decode(png_b64))).convert("RGB"))


def follow_job(server, request: VideoRequest):
    """Submit and yield (job id, status line, frames so far, video path or None) until it ends."""
    try:
        job, position = server.submit(request)
    except (ValueError, QueueFull) as e:
        raise ValueError(str(e)) from None
    seen, strips = 0, []
    yield job.id, f"queued (place {position + 1})", None, None
    while True:
        events = server.hub.since(job.id, seen, timeout=0.5)
        seen += len(events)
        strips += [_strip(d["png"]) for kind, d in events if kind == "chunk"]
        preview = np.concatenate(strips, axis=1) if strips else None
        job = server.store.get(job.id)
        if job is None:
            raise ValueError("the job was removed")
        if job.status in FINISHED:
            break
        if events:
            line = f"{job.status}: {job.progress:.0%}" + (f", {job.frames_done} frames made" if job.frames_done else "")
            yield job.id, line, preview, None
    if job.status != "succeeded":
        yield job.id, f"{job.status}" + (f": {job.error}" if job.error else ""), preview, None
        return
    seconds = job.finished_at - job.started_at
    yield job.id, f"succeeded: {job.frames_done} frames in {seconds:.1f}s (job {job.id})", preview, job.result


def matrix_picture(server, model: str, schedule, frames, steps, levels=None):
    """The noise-level matrix the form's settings would step, as a picture (None for token models
    or settings the model refuses)."""
    from framecast.sampling.noise_matrix import matrix_image

    try:
        pipe = server.caches[0].get(model)
        if pipe.model.family == "autoregressive":
            return None
        kw = {"schedule": schedule} if schedule not in (None, "", DEFAULT) else {}
        sigmas = noise_levels(levels)
        if sigmas is not None:
            kw["sigmas"], steps = sigmas, None
        m = pipe.noise_matrix("a clip", num_frames=int(frames) if frames else None, num_inference_steps=int(steps) if steps else None, **kw)
    except (ValueError, TypeError):
        return None
    rows, cols = m.levels.shape
    return matrix_image(m, cell=max(2, min(16, 360 // rows)), cell_width=max(8, min(40, 480 // cols)))


def model_summary(server, model: str) -> str:
    """Family, size and the first paragraph of the model card, as Markdown."""
    for card in server.model_cards():
        if card["name"] == model:
            text = (card.get("card") or "").strip()
            if text.startswith("---"):  # the card's YAML front matter
                text = text.split("---", 2)[-1]
            intro = next((p for p in text.split("\n\n") if p.strip() and not p.lstrip().startswith("#")), "")
            return f"**{model}**: {card['family']}, {card['params'] / 1e6:.1f} M parameters. {intro.strip()}"
    return f"**{model}**"


def model_defaults(server, model: str) -> tuple[int | None, float | None, int | None]:
    """The model's default steps, guidance and frames, to show in the form."""
    try:
        pipe = server.caches[0].get(model)
    except ValueError:
        return None, None, None
    d = pipe.model.request_defaults()
    steps = d.get("steps") or getattr(pipe.config, "set_steps", None)
    return steps, d.get("guidance"), d.get("num_frames")
