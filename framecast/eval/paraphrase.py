"""The paraphrase evaluation's rewriter: `framecast eval --prompts paraphrase`.

Each of the evaluation's canonical captions is rewritten as a user might type it, by code and words
kept apart from the training augmentation (`framecast.data.phrasing`): some of its words and
sentence frames never occur there, so a model scores well only if it generalises through its text
encoder. Every attribute is kept, so a clip is judged against the canonical caption it means.
"""

from __future__ import annotations

import random
import re

from framecast.data.shapes import parse_caption

LEXICON = {
    "big": ["large", "big", "enormous", "jumbo", "fairly large"],
    "small": ["little", "tiny", "small", "minuscule", "itty-bitty"],
    "red": ["red", "tomato-red", "fire-engine red"],
    "green": ["green", "kelly green", "leafy green"],
    "blue": ["blue", "sapphire", "ultramarine"],
    "yellow": ["yellow", "sunny yellow", "mustard"],
    "cyan": ["cyan", "aqua", "light cyan"],
    "magenta": ["magenta", "pink", "bright pink"],
    "white": ["white", "chalk-white", "milky white"],
    "circle": ["ball", "round disc", "circle", "round dot"],
    "square": ["square", "box", "square block"],
    "triangle": ["triangle", "triangle shape", "pyramid shape"],
}
MOTIONS = {
    "right": ["moving to the right", "sliding right", "heading rightwards", "going right", "that travels right",
              "drifting over to the right"],
    "left": ["moving to the left", "sliding left", "heading leftwards", "going left", "that travels left",
             "drifting over to the left"],
    "up": ["moving up", "sliding upward", "heading up", "going up", "that travels upward", "rising"],
    "down": ["moving down", "sliding downward", "heading down", "going down", "that travels downward", "falling"],
}
FRAMES = ["{a} {size} {colour} {shape} {motion}", "{a} {colour} {shape} ({size}) {motion}", "{size} {colour} {shape}, {motion}",
          "video of {a} {size} {colour} {shape} {motion}", "a clip where {a} {size} {colour} {shape} is {motion}"]
JOINS = [" and ", ", while ", " as ", " with "]


def _phrase(obj: dict, rng: random.Random, frame: str) -> str:
    pick = {k: rng.choice(LEXICON[obj[k]]) for k in ("size", "colour", "shape")}
    motion = rng.choice(MOTIONS[obj["direction"]])
    if "is {motion}" in frame and motion.startswith(("that ", "rising", "falling")):
        motion = motion.removeprefix("that ").replace("travels", "travelling")
    text = frame.format(a="\0", motion=motion, **pick)
    return re.sub("\0 (.)", lambda m: ("an " if m.group(1) in "aeiou" else "a ") + m.group(1), text)


def paraphrase(caption: str, rng: random.Random) -> str:
    """One rewrite of a canonical caption, with every attribute kept."""
    objects = parse_caption(caption)
    frame = rng.choice(FRAMES)
    parts = [_phrase(objects[0], rng, frame)]
    if len(objects) == 2:
        parts.append(_phrase(objects[1], rng, rng.choice(FRAMES[:3])))
    text = rng.choice(JOINS).join(parts)
    return text[:1].upper() + text[1:] + rng.choice(["", "."]) if rng.random() < 0.5 else text


def paraphrases(captions: list[str], seed: int = 0) -> list[str]:
    """One rewrite of each caption, the same for the same seed."""
    rng = random.Random(seed)
    return [paraphrase(c, rng) for c in captions]
