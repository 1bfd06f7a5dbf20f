"""A prompt schedule for a stream: the prompt changes at given video frames (interactive
streaming, as in LongLive, Yang et al. 2025).

`prompt_at` is a list of (frame, prompt) pairs: from video frame `frame` (0-based) on, the clip
follows `prompt`; the frames before it follow the request's prompt, or the previous switch. A
switch's prompt is one string for every clip of the batch, or a list with one per clip (prompts x
num_videos_per_prompt), as `negative_prompt` is. Frames are > 0, below num_frames and strictly
increasing; the generator checks that each falls on a boundary of its token-frames (a switch
cannot split the frames a model makes together) and that its schedule makes frames in order.
"""

from __future__ import annotations

import numbers

from framecast.text.encoder import check_prompts, shorten

Switches = tuple[tuple[int, list[str]], ...]  # (video frame, one prompt per clip), frames increasing


def parse_switch(text: str, what: str, usage: str, example: str) -> tuple[int, str]:
    """A switch typed as text, 'FRAME:PROMPT' (`--prompt-at`, a line of the web form) -> (frame,
    prompt); a ValueError naming the text as `what` shows it, with the `usage` and an `example`.
    The frame is checked against the clip later, with the rest of `prompt_at`."""
    frame, sep, prompt = text.partition(":")
    if not sep or not frame.strip().isdigit() or not prompt.strip():
        raise ValueError(f"{what} {text[:60]!r}: give {usage}, a video frame and the prompt from it on, e.g. {example}")
    return int(frame), prompt.strip()


def check_prompt_at(value, num_frames: int, batch: int) -> Switches:
    """`prompt_at` as given -> (frame, one prompt per clip) pairs, or a ValueError that names the
    input, the problem and the fix. A checked schedule passes again unchanged."""
    if not isinstance(value, (list, tuple)):
        raise ValueError(f"prompt_at must be a list of (frame, prompt) pairs, e.g. [(32, 'a big red circle moves left')], "
                         f"got {type(value).__name__}")
    out, last = [], 0
    for pair in value:
        if not isinstance(pair, (list, tuple)) or len(pair) != 2:
            raise ValueError(f"prompt_at holds {shorten(repr(pair), 60)}; each switch is a (frame, prompt) pair, "
                             "e.g. (32, 'a big red circle moves left')")
        frame, prompts = pair
        if isinstance(frame, bool) or not isinstance(frame, numbers.Integral):
            raise ValueError(f"prompt_at frame must be a whole number (a video frame index), got {shorten(repr(frame), 40)}")
        if frame <= 0:
            raise ValueError(f"prompt_at frame {frame}: a switch comes after the first frame (frame > 0); "
                             "give the opening prompt as the prompt itself")
        if frame >= num_frames:
            raise ValueError(f"prompt_at frame {frame} is past the clip's last frame ({num_frames - 1}); "
                             f"switch at a frame below {num_frames}, or ask for more frames")
        if frame <= last:
            raise ValueError(f"prompt_at frames must increase, one switch a frame: {frame} follows {last}; list the switches in order")
        prompts = check_prompts(prompts, "prompt_at prompt")
        if len(prompts) not in (1, batch):
            raise ValueError(f"prompt_at frame {frame} gives {len(prompts)} prompts for {batch} clip{'s' * (batch != 1)}; "
                             "give one prompt, or one per clip")
        out.append((int(frame), prompts * batch if len(prompts) == 1 else prompts))
        last = frame
    return tuple(out)


def token_frame_switches(switches: Switches, patch_frames: int) -> list[int]:
    """The switches' token-frames; a switch inside a token-frame is refused, naming the two
    frames around it where it may go."""
    out = []
    for frame, _ in switches:
        if frame % patch_frames:
            below = frame - frame % patch_frames
            options = f"{below} or {below + patch_frames}" if below > 0 else f"{below + patch_frames}"
            raise ValueError(f"prompt_at frame {frame} splits a token-frame: this model makes frames in groups of {patch_frames}; "
                             f"switch at {options}")
        out.append(frame // patch_frames)
    return out


__all__ = ["Switches", "check_prompt_at", "token_frame_switches"]
