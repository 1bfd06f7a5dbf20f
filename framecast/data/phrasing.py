"""Free-text descriptions of Shapes scenes: the caption augmentation that teaches a model plain English.

`describe(objects, rng)` writes one scene the way people might type it: synonyms for sizes, colours,
shapes and motions, other sentence frames and word orders, connectives between two objects, case
and punctuation, and sometimes a missing attribute. It returns the text and the canonical caption
it means (docs/shapes.md), where a missing attribute takes the documented default (`DEFAULTS`).
It is generated from the world's ground truth (the object attributes), never from a list of
sentences. The evaluation's rewriter (`framecast.eval.paraphrase`) is separate code with its own
words, so paraphrase scores measure generalisation rather than recall of this generator.
"""

from __future__ import annotations

import functools
import random
import zlib

from framecast.data.shapes import COLOURS, DIRECTIONS

SIZE_WORDS = {  # a thesaurus's entries for the two sizes
    "big": ["big", "large", "huge", "giant", "bigger", "larger", "great big", "sizeable", "massive", "oversized", "hefty",
            "enormous", "jumbo", "gigantic", "colossal", "immense", "bulky", "king-size", "chunky", "fairly large", "mammoth"],
    "small": ["small", "little", "tiny", "mini", "smaller", "wee", "miniature", "petite", "teeny", "compact", "minuscule",
              "itty-bitty", "teeny-tiny", "diminutive", "pocket-size", "baby", "microscopic", "fairly small", "dinky"],
}
COLOUR_WORDS = {
    "red": ["red", "crimson", "scarlet", "ruby", "cherry", "bright red"],
    "green": ["green", "lime", "emerald", "bright green", "grass-green"],
    "blue": ["blue", "navy", "cobalt", "azure", "royal blue", "deep blue"],
    "yellow": ["yellow", "golden", "gold", "lemon", "canary"],
    "cyan": ["cyan", "aqua", "turquoise", "teal", "aquamarine"],
    "magenta": ["magenta", "pink", "fuchsia", "purple", "violet", "hot pink"],
    "white": ["white", "snow-white", "ivory", "pure white", "bright white"],
}
SHAPE_WORDS = {
    "circle": ["circle", "ball", "disc", "disk", "dot", "round shape", "sphere", "orb", "round blob", "circular shape", "round disc",
               "round dot", "bubble", "spot", "round thing", "circular disc"],
    "square": ["square", "box", "block", "cube", "tile", "square shape", "quadrilateral", "crate", "square block", "block shape",
               "square tile", "box shape"],
    "triangle": ["triangle", "pyramid", "wedge", "triangular shape", "three-sided shape", "cone", "triangle shape", "pyramid shape",
                 "triangular block"],
}
# (phrase, verb form) pairs: "3" for a finite verb (moves), "ing" for a participle (moving), "inf" (move)
VERBS = {
    "3": ["moves", "goes", "travels", "slides", "drifts", "glides", "heads", "shifts", "rolls", "floats", "is moving",
          "is going", "is sliding", "is heading", "zooms", "runs", "is travelling", "makes its way", "wanders", "scoots"],
    "ing": ["moving", "going", "travelling", "sliding", "drifting", "gliding", "heading", "rolling", "floating", "zooming",
            "shifting", "making its way", "scooting", "cruising"],
    "inf": ["move", "go", "travel", "slide", "drift", "glide", "head", "roll", "float"],
}
DIRECTION_WORDS = {
    "right": ["right", "to the right", "rightward", "rightwards", "towards the right", "toward the right side", "to the right edge",
              "east", "left to right", "across to the right", "over to the right"],
    "left": ["left", "to the left", "leftward", "leftwards", "towards the left", "toward the left side", "to the left edge",
             "west", "right to left", "across to the left", "over to the left"],
    "up": ["up", "upward", "upwards", "towards the top", "to the top", "toward the top edge", "north", "skyward", "up the screen",
           "bottom to top"],
    "down": ["down", "downward", "downwards", "towards the bottom", "to the bottom", "toward the bottom edge", "south",
             "down the screen", "top to bottom"],
}
# whole verb phrases that carry the direction themselves
DIRECTION_VERBS = {
    "up": ["rises", "climbs", "ascends", "floats up", "lifts off upward"],
    "down": ["falls", "sinks", "drops", "descends", "slides down"],
    "right": ["slides right", "drifts right", "heads right"],
    "left": ["slides left", "drifts left", "heads left"],
}
AIMLESS = ["bouncing", "moving around", "in motion", "bouncing around", "moving"]  # motion with no direction
THINGS = ["shape", "object", "thing", "item"]
CONNECTIVES = [" and ", ", and ", " while ", " as ", "; ", ", while ", " plus ", ". ", " and also ", ", ", " whereas ",
               " and meanwhile ", ". Meanwhile, ", " together with ", " alongside ", " next to ", " beside ", " with ", " and then "]
PREFIXES = ["video of", "a video of", "a clip of", "an animation of", "footage of", "show me", "generate", "render", "make a video of",
            "animation:", "a short clip showing", "create", "a clip where", "a video where", "a scene where", "in this video,"]
DEFAULTS = {"size": "big", "shape": "circle", "direction": "right", "colours": ("red", "blue", "green", "yellow", "cyan", "magenta", "white")}


HUES = {"red": 0, "yellow": 60, "green": 120, "cyan": 180, "blue": 240, "magenta": 300}  # the world's six hues, degrees
# colour terms for what the world does not have: a name holding one means none of its colours
LACKING = ("brown", "orange", "grey", "gray", "black", "tan", "khaki", "beige", "olive")
CRUDE = ("poo", "poop", "shit", "piss", "puke", "vomit", "barf", "snot", "booger", "diarrhea", "bile", "sick", "sickly", "ugly",
         "gross", "icky")  # the XKCD survey's joke names, left out


def hue_colour(rgb: tuple[float, float, float]) -> str | None:
    """The world's colour an RGB value (0-1) clearly means by its hue, or None: near-white is white; a
    vivid colour (max - min >= 0.4) or a pale tint (value >= 0.9, saturation >= 0.3) within 18 degrees
    of one of the six hues is that hue, so a tint keeps its hue ("light cyan" is cyan); greys, dull
    colours and colours between two hues (oranges, olives) mean none."""
    import colorsys

    h, s, v = colorsys.rgb_to_hsv(*rgb)
    if s < 0.12 and v >= 0.92:
        return "white"
    if s * v < 0.4 and (v < 0.9 or s < 0.3):
        return None
    dist = {c: min(abs(360 * h - x), 360 - abs(360 * h - x)) for c, x in HUES.items()}
    nearest = min(dist, key=dist.get)
    return nearest if dist[nearest] <= 18 else None


def held_out_name(name: str) -> bool:
    """One table name in eight (by a hash of its text) is kept out of training, to measure how a model
    reads colour names it never saw (`python tools/colour_words.py`)."""
    return zlib.crc32(name.encode()) % 8 == 0


@functools.lru_cache(maxsize=2)
def colour_names(held_out: bool = False) -> dict[str, list[str]]:
    """Colour names of the XKCD colour survey and CSS (matplotlib's tables) that clearly mean one of the
    world's seven colours by their hue (`hue_colour`), beside the hand-picked `COLOUR_WORDS`. A
    hand-picked word never moves to another colour, and a name whose last word is one ("pea green")
    is kept only where its hue agrees; hedged names ("greenish blue"), names of colours the world
    lacks and joke names are left out. `held_out`: the names `held_out_name` keeps out of training."""
    from matplotlib import colors

    picked = {w for words in COLOUR_WORDS.values() for w in words}
    heads = {w: c for c, words in COLOUR_WORDS.items() for w in words if " " not in w}
    found: dict[str, list[str]] = {n: [] for n in COLOURS}
    kept: set[str] = set()  # XKCD and CSS share some names
    sources = {**{k.removeprefix("xkcd:"): v for k, v in colors.XKCD_COLORS.items()}, **colors.CSS4_COLORS}
    for name, value in sorted(sources.items()):
        name = name.replace("/", " ")
        if name in picked or name in kept or held_out_name(name) != held_out:
            continue
        if any(word in LACKING + CRUDE or word.endswith("ish") for word in name.split()):  # hedged: "greenish blue"
            continue
        colour = hue_colour(colors.to_rgb(value))
        said = heads.get(name.split()[-1], colour)  # "pea green" is green to a reader, yellow by its hue: neither
        if colour is not None and said == colour:
            found[colour].append(name)
            kept.add(name)
    return found


def _colour(colour: str, rng: random.Random) -> str:
    named = colour_names()[colour]
    return rng.choice(named) if named and rng.random() < 0.35 else rng.choice(COLOUR_WORDS[colour])


def _article(rng: random.Random, next_word: str) -> str:
    a = "an" if next_word[:1] in "aeiou" else "a"
    return rng.choice([a, a, a, "the", "one"])


def _noun_phrase(obj: dict, rng: random.Random, given: set[str]) -> str:
    size = rng.choice(SIZE_WORDS[obj["size"]]) if "size" in given else ""
    colour = _colour(obj["colour"], rng) if "colour" in given else ""
    shape = rng.choice(SHAPE_WORDS[obj["shape"]]) if "shape" in given else rng.choice(THINGS)
    style = rng.randrange(7)
    if style == 0 or not (size and colour):
        words = " ".join(w for w in (size, colour, shape) if w)
    elif style == 5:
        words = f"{colour} {size} {shape}"
    elif style == 6:
        words = f"{colour} {shape} ({size})"
    elif style == 1:
        words = f"{colour} {shape}, {size},"
    elif style == 2:
        words = f"{size} {shape} in {colour}"
    elif style == 3:
        words = f"{shape} that is {size} and {colour}"
    else:
        words = f"{size} {shape} coloured {colour}" if rng.random() < 0.5 else f"{size} {colour}-coloured {shape}"
    return f"{_article(rng, words)} {words}" if rng.random() < 0.85 else words


def _motion(obj: dict, rng: random.Random, form: str, given: set[str]) -> str:
    if "direction" not in given:
        return rng.choice(AIMLESS) if form != "inf" else "move around"
    d = obj["direction"]
    if form == "3" and rng.random() < 0.2:
        return rng.choice(DIRECTION_VERBS[d])
    return f"{rng.choice(VERBS[form])} {rng.choice(DIRECTION_WORDS[d])}"


def _clause(obj: dict, rng: random.Random, given: set[str], form: str) -> str:
    noun, style = _noun_phrase(obj, rng, given), rng.randrange(6)
    if form == "ing":
        return f"{noun} {_motion(obj, rng, 'ing', given)}"
    if style == 0 and "direction" in given:
        return f"{rng.choice(DIRECTION_WORDS[obj['direction']])}, {noun} {rng.choice(VERBS['3'])}"
    if style == 1:
        return f"there is {noun} {_motion(obj, rng, 'ing', given)}"
    if style == 2:
        return f"{rng.choice(['watch', 'see', 'show', 'look at'])} {noun} {_motion(obj, rng, 'inf', given)}"
    if style == 3:
        return f"{noun} {_motion(obj, rng, 'ing', given)}"
    if style == 4 and "direction" in given:
        return f"{noun} that {_motion(obj, rng, '3', given)}"
    return f"{noun} {_motion(obj, rng, '3', given)}"


def _shared_motion(objects: list[dict], rng: random.Random, given: list[set[str]]) -> str | None:
    """Two objects moving the same way under one verb ("X and Y both move left"), or, when they
    are alike but for colour, one plural noun ("two small squares, one red and one blue, ...")."""
    a, b = objects
    if a["direction"] != b["direction"] or "direction" not in given[0] or "direction" not in given[1]:
        return None
    motion = _motion(a, rng, "ing", given[0])
    if all(a[k] == b[k] for k in ("size", "shape")) and all({"size", "shape", "colour"} <= g for g in given) and rng.random() < 0.5:
        size, shape = rng.choice(SIZE_WORDS[a["size"]]), rng.choice(SHAPE_WORDS[a["shape"]])
        plural = shape + ("es" if shape.endswith(("x", "s")) else "s")
        c1, c2 = _colour(a["colour"], rng), _colour(b["colour"], rng)
        return rng.choice([f"two {size} {plural}, one {c1} and one {c2}, {motion}", f"a {c1} and a {c2} {size} {shape} {motion}"])
    x, y = _noun_phrase(a, rng, given[0]), _noun_phrase(b, rng, given[1])
    return rng.choice([f"{x} and {y} both {motion}", f"{x} and {y}, both {motion}", f"both {x} and {y} {motion}",
                       f"{x} and {y} {motion} together", f"{x} and {y} {rng.choice(VERBS['inf'])} {rng.choice(DIRECTION_WORDS[a['direction']])}"])


def _given(rng: random.Random, drop: float) -> set[str]:
    given = {"size", "colour", "shape", "direction"}
    for attr, p in (("size", drop), ("direction", drop / 2), ("colour", drop / 3), ("shape", drop / 3)):
        if rng.random() < p:
            given.discard(attr)
    return given


def _case(text: str, rng: random.Random) -> str:
    r = rng.random()
    text = text[:1].upper() + text[1:] if r < 0.4 else text.upper() if r < 0.45 else text.title() if r < 0.5 else text
    return text + rng.choice(["", "", ".", ".", "!", " ...", "?"]) if not text.endswith(".") else text


def fill_defaults(objects: list[dict], given: list[set[str]]) -> str:
    """The canonical caption a description with missing attributes means (`DEFAULTS`): a missing
    direction follows the other object's (two objects share an axis), a missing colour is the first
    default colour no other object has."""
    filled = [dict(o) for o in objects]
    for obj, g, other in zip(filled, given, reversed(filled)):
        obj["size"] = obj["size"] if "size" in g else DEFAULTS["size"]
        obj["shape"] = obj["shape"] if "shape" in g else DEFAULTS["shape"]
        if "direction" not in g:
            obj["direction"] = other["direction"] if other is not obj else DEFAULTS["direction"]
    for obj, g in zip(filled, given):
        if "colour" not in g:
            taken = {o["colour"] for o in filled if o is not obj}
            obj["colour"] = next(c for c in DEFAULTS["colours"] if c not in taken)
    return " and ".join(f"a {o['size']} {o['colour']} {o['shape']} moves {o['direction']}" for o in filled)


def describe(objects: list[dict], rng: random.Random, *, drop: float = 0.12, canonical: float = 0.1) -> tuple[str, str]:
    """(free text, the canonical caption it means) for a scene's objects, each a dict with size,
    colour, shape and direction (`parse_caption`'s output). With probability `canonical` the text is
    the canonical caption itself; each attribute is left out with probability about `drop`."""
    exact = " and ".join(f"a {o['size']} {o['colour']} {o['shape']} moves {o['direction']}" for o in objects)
    if rng.random() < canonical:
        return exact, exact
    given = [_given(rng, drop) for _ in objects]
    if len(objects) == 2 and given[0] == given[1] and "direction" not in given[0]:  # an axis must come from somewhere
        given[0].add("direction")
    form = "ing" if rng.random() < 0.25 else "3"
    clauses = [_clause(o, rng, g, form) for o, g in zip(objects, given)]
    shared = _shared_motion(objects, rng, given) if len(objects) == 2 and rng.random() < 0.5 else None
    if len(clauses) == 1:
        text = clauses[0]
    elif shared:
        text = shared
    elif rng.random() < 0.15:
        text = f"two shapes: {clauses[0]} and {clauses[1]}"
    else:
        second = clauses[1].replace(" moving", " also moving", 1) if rng.random() < 0.2 else clauses[1]
        text = clauses[0] + rng.choice(CONNECTIVES) + second
    if rng.random() < 0.15:
        text = f"{rng.choice(PREFIXES)} {text}"
    return _case(text, rng), fill_defaults(objects, given)


def all_attributes() -> dict[str, list[str]]:
    """The values of each attribute (for listings such as `framecast prompts`)."""
    return {"size": list(SIZE_WORDS), "colour": list(COLOURS), "shape": list(SHAPE_WORDS), "direction": list(DIRECTIONS)}
