"""Layer 1, the command line: parse, validate, call a pipeline, print. `framecast --help`."""

from __future__ import annotations

import functools
import math
import os
import sys
import types
from pathlib import Path
from typing import Callable, List, Optional

import typer

from framecast.generators.checks import MAX_GUIDANCE, MAX_REFINE, MAX_SHIFT, MAX_STEPS, MAX_TEMPERATURE, check_sigmas
from framecast.threads import apply_threads

# --- limits at the command line's edge ----------------------------------------------------------
# Sizes are checked before anything is allocated: frames against the pipeline's memory estimate
# (framecast.generators.budget) plus the noise-level matrix; steps, guidance, temperature, shift
# and refine against the pipeline's own limits (framecast.generators.checks), named as options here.
MAX_SEED = 2**63  # seeds are 0 <= seed < 2**63 (a torch.Generator takes 64-bit seeds)
MAX_CANDIDATES = 256  # --best-of: candidates are drawn in one batch
MAX_BATCH = 1024  # eval --batch-size
MAX_CLIPS = 100_000  # --num
SCHEDULE_SHOW = {"frames": 128, "steps": 1000, "rows": 4096}  # the picture stays under ~60 MB
LENS_FILES = {"index.html", "steps.png", "layers.png", "final.png", "matrix.png"}  # what `framecast lens` writes
THREADS_HELP = "PyTorch threads (default: FRAMECAST_THREADS, else the cores other processes leave free)"
FAR_BELOW = 0.75  # a setting whose card score is under this share of the default's is warned about

DEBUG = {"on": os.environ.get("FRAMECAST_DEBUG", "") not in ("", "0")}


def fail(message: str, code: int = 2) -> None:
    """The one way the command line refuses: `error: ...` on stderr and an exit code (2: bad input)."""
    if len(message) > 600:  # a message that quotes a huge input (a 100k-character prompt) stays readable
        message = message[:300] + " [...] " + message[-280:]
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _unexpected(e: BaseException) -> None:
    """One line for what is not the user's doing, and a non-zero exit; --debug shows the traceback."""
    if DEBUG["on"]:
        raise e
    if isinstance(e, KeyboardInterrupt):
        fail("interrupted (an output being written was removed)", 130)
    name = type(e).__name__
    if isinstance(e, MemoryError) or "out of memory" in str(e).lower():
        fail("out of memory; ask for fewer --frames, fewer --steps or a smaller --batch-size/--best-of", 1)
    if isinstance(e, OSError):
        where = f" '{e.filename}'" if e.filename else ""
        fail(f"{e.strerror or e}{where} ({name}); an output being written was removed", 1)
    fail(f"unexpected {name}: {str(e).splitlines()[0] if str(e) else 'no message'} "
         "(rerun with framecast --debug or FRAMECAST_DEBUG=1 for the traceback)", 1)


def guarded(fn: Callable) -> Callable:
    """A command whose ValueErrors are refusals (exit 2, one line) and whose other exceptions are
    one line and a non-zero exit (130 for Ctrl-C): never a traceback, unless --debug."""

    @functools.wraps(fn)
    def command(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.TyperException):  # usage errors and exits: typer prints them
            raise
        except ValueError as e:
            if DEBUG["on"]:
                raise
            fail(str(e))
        except (Exception, KeyboardInterrupt) as e:  # noqa: BLE001 - the face's last line of defence
            _unexpected(e)

    return command


class Typer(typer.Typer):
    """typer.Typer whose every command is guarded."""

    def command(self, *args, **kwargs):
        register = super().command(*args, **kwargs)
        return lambda fn: register(guarded(fn))


app = Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="framecast: train, generate and measure video generators.")


def _version(value: bool) -> None:
    if value:
        from framecast import __version__

        typer.echo(f"framecast {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="print the version and exit"),
    debug: bool = typer.Option(False, "--debug", help="show tracebacks (also FRAMECAST_DEBUG=1)"),
) -> None:
    """framecast: train, generate and measure video generators.

    Example: framecast generate "a big red circle moves right" -o clip.mp4"""
    DEBUG["on"] = debug or os.environ.get("FRAMECAST_DEBUG", "") not in ("", "0")


def _given(**options) -> dict:
    """The family-specific options the user gave (None: the model's default), to pass on as keywords."""
    return {k: v for k, v in options.items() if v is not None}


# --- numbers -----------------------------------------------------------------------------------
def sigma_list(text: str | None, steps: int | None) -> tuple[float, ...] | None:
    """--sigmas "1,0.75,0.5,0.25" -> the levels as the pipeline checks them (falling within (0, 1],
    a last 0 dropped), which set the steps: a --steps that disagrees is refused in the command
    line's words."""
    if text is None:
        return None
    shown = text if len(text) <= 40 else text[:37] + "..."
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"--sigmas {shown!r}: give noise levels separated by commas, highest first, e.g. 1,0.75,0.5,0.25") from None
    levels = check_sigmas(values, None)
    if steps is not None and steps != len(levels):
        raise ValueError(f"--steps {steps} and --sigmas {shown!r} ({len(levels)} levels) disagree: the levels set the steps; leave --steps out")
    return levels


def steps_taken(steps: int | None, levels: tuple[float, ...] | None) -> int | None:
    """The steps a run takes: the number of --sigmas (`sigma_list` checked any --steps against
    them), else --steps (None: the model's default)."""
    return len(levels) if levels else steps


def count(name: str, value: int | None, *, lo: int = 1, hi: int | None = None, why: str = "") -> int | None:
    """An integer option within [lo, hi]; None (the model's default) passes."""
    if value is None:
        return None
    if value < lo:
        raise ValueError(f"{name} must be > {lo - 1}, got {value}" if lo == 1 else f"{name} must be >= {lo}, got {value}")
    if hi is not None and value > hi:
        raise ValueError(f"{name} {value} is above the limit of {hi}{why}; give {name} {hi} or less")
    return value


def real(name: str, value: float | None, *, lo: float | None = None, hi: float | None = None, above: bool = False) -> float | None:
    """A finite float option in [lo, hi] (or (lo, hi] with `above`); NaN and inf are refused."""
    if value is None:
        return None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value}")
    low_ok = lo is None or (value > lo if above else value >= lo)
    if not low_ok or (hi is not None and value > hi):
        low = "" if lo is None else f"{'>' if above else '>='} {lo:g}"
        high = "" if hi is None else f"<= {hi:g}"
        raise ValueError(f"{name} must be {' and '.join(x for x in (low, high) if x)}, got {value}")
    return value


def seed_range(seed: int, clips: int = 1) -> int:
    """Seeds seed .. seed + clips - 1 must fit a torch.Generator: 0 <= seed < 2**63."""
    if seed < 0 or seed + clips - 1 >= MAX_SEED:
        top = MAX_SEED - clips
        raise ValueError(f"--seed must be between 0 and {top} (2**63 less the clips it seeds), got {seed}")
    return seed


def seeds_used(clips: int, best_of: int = 1, chunk: int | None = None) -> int:
    """How far past --seed the seeds of a run reach: clip i uses seed + i, candidate k adds k
    strides (framecast.eval.scaling), each chunk of a chunk search one more."""
    from framecast.eval.scaling import SEED_STRIDE

    searching = best_of > 1 or chunk is not None
    return clips + (best_of * SEED_STRIDE + MAX_STEPS if searching else 0)


def sampling_numbers(*, steps=None, guidance=None, temperature=None, top_k=None, top_p=None, frames=None, context_level=None,
                     refine=None, step_cache=None, first_steps=None) -> None:
    """The options generate, eval and lens share, checked before a model is loaded."""
    count("--frames", frames)
    count("--steps", steps, hi=MAX_STEPS, why=" (the bundled models use 4 to 50)")
    real("--guidance", guidance, lo=0.0, hi=MAX_GUIDANCE)
    real("--temperature", temperature, lo=0.0, hi=MAX_TEMPERATURE)  # 0: greedy
    count("--top-k", top_k, lo=0, hi=2**20)
    real("--top-p", top_p, lo=0.0, hi=1.0, above=True)
    real("--context-level", context_level, lo=0.0, hi=1.0)
    count("--refine", refine, lo=0, hi=MAX_REFINE)
    count("--first-steps", first_steps, lo=0, hi=MAX_STEPS)
    real("--step-cache", step_cache, lo=0.0)  # a threshold; 0 is off (framecast.nn.step_cache)


def outputs(paths: list[Path], overwrite: bool, **kw) -> list[Path]:
    """Every output checked before any work (framecast.video.check_output); one file named twice is refused."""
    from framecast.video import check_output

    seen = set()
    for p in paths:
        if p.absolute() in seen:
            raise ValueError(f"output '{p}' is given twice; each --output must be a different file")
        seen.add(p.absolute())
        check_output(p, overwrite=overwrite, **kw)
    return paths


# --- memory --------------------------------------------------------------------------------------
def matrix_bytes(model, frames: int, steps: int | None) -> int:
    """The noise-level matrix a run steps through: steps rows per token-frame for the frame-by-frame
    schedules of a hybrid model (framecast.sampling.noise_matrix), float32."""
    F = frames // model.backbone.config.patch_frames
    rows = (steps or getattr(model.config, "steps", 0) or 50) * (F if model.family == "hybrid" else 1)
    return rows * F * 4


def check_size(pipe, frames: int | None, steps: int | None, clips: int = 1, *, schedule: str | None = None,
               use_cache: bool = True) -> None:
    """Refuse a request whose clips would not fit in the memory free where the model runs (the
    pipeline's estimate, framecast.generators.budget, and the noise-level matrix), naming the
    largest --frames that does."""
    from framecast.generators.budget import available_bytes, request_bytes

    model = pipe.model
    T = frames if frames is not None else model.config.frames
    windowed = model.family == "hybrid" and use_cache and (schedule or getattr(model.config, "schedule", "")) != "full"
    have = available_bytes(pipe.device)
    need = lambda t: request_bytes(model, clips, t, windowed=windowed) + matrix_bytes(model, t, steps)  # noqa: E731
    if have is None or need(T) <= have:
        return
    unit = model.backbone.config.patch_frames
    lo, hi = 0, max(1, T // unit)  # token-frames: lo fits (none trivially), hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if need(mid * unit) <= have else (lo, mid)
    lo *= unit
    many = f" x {clips} clips at once" if clips > 1 else ""
    fix = f"give --frames {lo} or fewer" if lo >= unit else "give fewer clips at once (--batch-size, --best-of)"
    raise ValueError(f"--frames {T}{many} is too much for {pipe.name}: about {need(T) / 2**30:,.1f} GiB, more than the "
                     f"{have / 2**30:.1f} GiB free on {pipe.device.type}; {fix} (it was trained on {model.config.frames})")


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="a recipe name (e.g. shapes-diffusion-small) or a YAML file"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: --set optim.lr=1e-4 (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="a run folder (or checkpoint folder) to continue"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default: the recipe's out_dir; with --data, runs/FOLDER)"),
    data: Optional[Path] = typer.Option(None, "--data", help="fine-tune on your own videos: a folder of clips with captions"),
    from_: Optional[str] = typer.Option(None, "--from", help="with --data: the model to fine-tune (default: shapes-diffusion)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build everything, take two steps, keep nothing"),
):
    """Train a model from a recipe or YAML, or fine-tune one on your videos (--data); checkpoints are
    atomic and `--resume` continues exactly.

    Example: framecast train --data my_videos --out runs/mine

    Launch with `torchrun --nproc_per_node N -m framecast.cli train ...` for DDP (or --set parallel=fsdp)."""
    from framecast.train.recipes import finetune_config, load_config, load_run_config
    from framecast.train.trainer import train as run_train

    try:
        if data is not None:
            if recipe is not None or resume is not None:
                fail("--data fine-tunes a model (--from) on a folder; give it without a recipe or --resume")
            cfg = finetune_config(from_ or "shapes-diffusion", str(data), set_)
        elif from_ is not None:
            fail("--from names the model to fine-tune with --data DIR")
        elif recipe is None:
            if resume is None:
                fail("give a recipe or YAML file to train, --data DIR to fine-tune on your videos, or --resume RUN_DIR")
            cfg = load_run_config(resume, set_)
        else:
            cfg = load_config(recipe, set_)
        if out is not None:
            cfg.out_dir = str(out)
        run_dir = run_train(cfg, resume=resume, dry_run=dry_run)
    except ValueError as e:
        fail(str(e))
    if dry_run:
        typer.echo(f"dry run: built {cfg.recipe or 'the model'} and took 2 steps; nothing was kept")
    else:
        typer.echo(f"trained {cfg.steps} steps; model written to {run_dir / 'model'}")


@app.command()
def pack(
    source: Path = typer.Argument(..., help="a run folder (its latest checkpoint) or a checkpoint folder"),
    output: Path = typer.Argument(..., help="the packed checkpoint's folder (replaced if it exists)"),
):
    """Pack a checkpoint to move a run to another machine (e.g. in a git commit): weights in bf16,
    no optimizer state, the run's config and log. `framecast train --resume OUTPUT` goes on from it,
    writing to the run's out_dir; AdamW's moments start afresh and the learning rate warms up again.

    Example: framecast pack runs/mine packs/mine"""
    from framecast.train.checkpoint import pack_checkpoint

    try:
        dest = pack_checkpoint(source, output)
    except ValueError as e:
        fail(str(e))
    size = sum(f.stat().st_size for f in dest.iterdir()) / 2**20
    typer.echo(f"packed {source} into {dest} ({size:.1f} MB)")


# --- what generate adds around a pipeline call ------------------------------------------------
def _scores(path: Path) -> dict:
    import json

    try:
        return json.loads((Path(path) / "scores.json").read_text())
    except (OSError, ValueError):
        return {}


def _setting_score(scores: dict, option: str, value: str) -> float | None:
    """A card's scene accuracy for one setting: the card's own (when measured with it) or a nested one."""
    if scores.get(option) == value:
        return scores.get("scene_accuracy")
    nested = scores.get(value)
    return nested.get("scene_accuracy") if isinstance(nested, dict) else None


def card_warning(pipe, **chosen) -> str | None:
    """A line when the model card (scores.json, and a `decode_with` sibling's) scores a chosen
    setting far below the model's default; the figures are read from the cards, never kept here."""
    from framecast.generators.io import read_config
    from framecast.pipeline import resolve_model

    if pipe.path is None:
        return None
    base = _scores(pipe.path)
    default = base.get("scene_accuracy")
    if not isinstance(default, (int, float)):
        return None
    siblings = read_config(pipe.path).get("decode_with", {})
    for option, value in chosen.items():
        if value is None or base.get(option) == value:
            continue
        score, card = _setting_score(base, option, value), pipe.name
        if score is None and option == "decode" and value in siblings:  # the order is handed to a sibling: its card
            sibling = resolve_model(siblings[value])
            score, card = _setting_score(_scores(sibling), option, value), sibling.name
        if isinstance(score, (int, float)) and score < FAR_BELOW * default:
            return (f"warning: --{option} {value} scores a scene accuracy of {score:.2f} on {card}'s model card, "
                    f"against {default:.2f} with {pipe.name}'s default (framecast models {card})")
    return None


def start_frames(pipe, image: Path | None, video: Path | None) -> dict:
    """--image and --video read here and resized to the model's canvas (with a one-line notice),
    so a clip framecast wrote (upscaled for viewing) can be continued."""
    from framecast.video import read_image, read_video, resize_frames

    given = {}
    if image is None and video is None:
        return given
    side = pipe.model.config.size
    for name, path, read in (("image", image, lambda p: read_image(p)[None]), ("video", video, read_video)):
        if path is None:
            continue
        frames = read(path)
        if frames.shape[1:3] != (side, side):
            typer.echo(f"note: --{name} '{path}' is {frames.shape[2]}x{frames.shape[1]}; resized to the model's {side}x{side}", err=True)
            frames = resize_frames(frames, side)
        given[name] = frames[0] if name == "image" else frames
    return given


def progress_bar(pipe, prompt: str, call: dict, file=None):
    """A tqdm bar on stderr with rate and ETA, advanced by the pipeline's step callback (one tick a
    denoising step or, for token models, a decoding pass; the total is `pipe.total_steps`). Shown
    on a terminal only."""
    from tqdm import tqdm

    total = pipe.total_steps(prompt, **call)
    tokens = pipe.model.family == "autoregressive"
    bar = tqdm(total=total, desc="decoding" if tokens else "denoising", unit="pass" if tokens else "step", file=file or sys.stderr,
               leave=False, dynamic_ncols=True, disable=None)

    def on_step(p, i, sigma, tensors):
        bar.update(1)
        return tensors

    return bar, on_step


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="what to show, e.g. 'a big red circle moves right' (framecast prompts MODEL lists the words)"),
    model: str = typer.Option("shapes-diffusion", "--model", "-m", help="a bundled model name or a model folder"),
    output: List[Path] = typer.Option([Path("clip.mp4")], "--output", "-o", help="file to write: .mp4, .gif, .png (contact sheet with the prompt) or .npy; repeat for several"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace outputs that exist"),
    seed: int = typer.Option(0, "--seed", help="0 <= seed < 2**63"),
    steps: Optional[int] = typer.Option(None, "--steps", help=f"sampling steps, at most {MAX_STEPS} (default: the model's)"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance scale (default: the model's)"),
    frames: Optional[int] = typer.Option(None, "--frames", help="clip length (default: the model's training length; bounded by memory)"),
    height: Optional[int] = typer.Option(None, "--height", help="frame height in pixels (Wan models; bundled models make one size)"),
    width: Optional[int] = typer.Option(None, "--width", help="frame width in pixels (Wan models; bundled models make one size)"),
    transformer: Optional[Path] = typer.Option(None, "--transformer", help="Wan models: a checkpoint to use as the transformer (CausVid, Self-Forcing, SkyReels-V2)"),
    preset: Optional[str] = typer.Option(None, "--preset", help="Wan models: a known model's sampling settings: self-forcing or skyreels-v2-df"),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="steer away from this prompt"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, euler-ancestral, euler-stochastic, heun or dpmpp-2m (default: the model's)"),
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="diffusion and hybrid models: the noise levels of the steps, highest first, e.g. 1,0.75,0.5,0.25 (they set the steps)"),
    image: Optional[Path] = typer.Option(None, "--image", help="first frame to start from (image to video); resized to the model's canvas"),
    video: Optional[Path] = typer.Option(None, "--video", help="clip to continue (e.g. one framecast wrote); resized to the model's canvas"),
    context_frames: Optional[int] = typer.Option(None, "--context-frames", help="how many frames of --video to keep"),
    fps: float = typer.Option(8.0, "--fps", help="frames per second of .mp4/.gif"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has it, else fp32), bf16 or fp32"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="hybrid and Wan models: autoregressive, pyramid or full; Wan: causal (chunks with the KV cache)"),
    stream: bool = typer.Option(False, "--stream", help="hybrid and AR models: write frames as they are made"),
    no_cache: bool = typer.Option(False, "--no-cache", help="hybrid and AR models: recompute the context at every step"),
    context_level: Optional[float] = typer.Option(None, "--context-level", help="hybrid models: noise level of finished frames seen as context"),
    first_steps: Optional[int] = typer.Option(None, "--first-steps", help="hybrid models: steps of the first frame when nothing comes before it (default: the model's; 0: --steps)"),
    prompt_at: List[str] = typer.Option([], "--prompt-at", help="hybrid models: FRAME:PROMPT, from video frame FRAME on follow PROMPT "
                                        "(repeatable, frames increasing; with --stream, interactive streaming)"),
    no_recache: bool = typer.Option(False, "--no-recache", help="with --prompt-at: keep the cached context under the old prompt "
                                    "(default: re-encode it under the new one, LongLive's KV re-cache)"),
    decode: Optional[str] = typer.Option(None, "--decode", help="autoregressive models: raster, diagonal or set"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="autoregressive models"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="autoregressive models"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="autoregressive models"),
    refine: Optional[int] = typer.Option(None, "--refine", help="autoregressive models, set decoding: Gibbs sweeps over each token-frame"),
    step_cache: Optional[float] = typer.Option(None, "--step-cache", help="diffusion and hybrid models: reuse a step's later blocks while the first block's output changes less than THRESHOLD (relative L1; 0: off; 0.15 to 0.3 on the bundled models)", metavar="THRESHOLD"),
    best_of: int = typer.Option(1, "--best-of", help="draw N candidates and keep the verifier's pick (test-time scaling)"),
    verifier: str = typer.Option("judge", "--verifier", help="for --best-of: judge (Shapes prompts), classifier or classifier:FOLDER"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="hybrid/AR with --best-of: pick among N candidates for each next CHUNK frames"),
    strict: bool = typer.Option(False, "--strict", help="refuse a prompt far from everything the model was trained on (default: warn)"),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
):
    """Generate a clip from a text prompt.

    Example: framecast generate "a big red circle moves right" -m shapes-hybrid -o clip.mp4 -o clip.png

    Interactive (the prompt changes at frame 24): framecast generate "a big red circle moves right"
    -m shapes-hybrid --stream --frames 48 --prompt-at "24:a big red circle moves up" -o clip.mp4"""
    a = types.SimpleNamespace(**locals())
    _check_generate(a)
    apply_threads(threads)
    if stream:
        return _generate_stream(a)
    if best_of > 1 or chunk is not None:
        return _generate_search(a)
    return _generate_one(a)


def _check_generate(a) -> None:
    """Everything generate can check before a model is loaded: numbers and output paths."""
    from framecast.video import check_fps

    sampling_numbers(steps=a.steps, guidance=a.guidance, temperature=a.temperature, top_k=a.top_k, top_p=a.top_p, frames=a.frames,
                     context_level=a.context_level, refine=a.refine, step_cache=a.step_cache, first_steps=a.first_steps)
    count("--best-of", a.best_of, hi=MAX_CANDIDATES, why=" (candidates are drawn in one batch)")
    count("--context-frames", a.context_frames)
    count("--height", a.height)
    count("--width", a.width)
    count("--chunk", a.chunk)
    seed_range(a.seed, seeds_used(1, a.best_of, a.chunk))
    check_fps(real("--fps", a.fps, lo=0.0, hi=1000.0, above=True))
    a.switches = prompt_switches(a.prompt_at, a.no_recache)
    a.levels = sigma_list(a.sigmas, a.steps)
    if a.stream and (a.best_of > 1 or a.chunk is not None):
        raise ValueError("--stream writes frames as they are made, so it cannot search among candidates; drop --best-of/--chunk or --stream")
    if a.stream and len(a.output) != 1:
        raise ValueError("--stream writes one output; give a single --output")
    outputs(a.output, a.overwrite)


def _loaded(a):
    """The pipeline, the request checked against memory, the card's warning printed, the start frames read."""
    from framecast.pipeline import load

    options = _given(transformer=a.transformer, preset=a.preset)
    pipe = load(a.model, precision=a.precision, device=a.device, **options)
    if pipe.model.family == "wan":  # any size; memory is measured, not estimated
        return pipe, start_frames(pipe, a.image, a.video)
    check_size(pipe, a.frames, steps_taken(a.steps, a.levels), max(1, a.best_of), schedule=a.schedule, use_cache=not a.no_cache)
    warning = card_warning(pipe, decode=a.decode, schedule=a.schedule, sampler=a.sampler)
    if warning:
        typer.echo(warning, err=True)
    _prompt_check(pipe, [a.prompt, *(p for _, p in a.switches.get("prompt_at", []))], a.strict)
    return pipe, start_frames(pipe, a.image, a.video)


def _prompt_check(pipe, prompt: str | list[str], strict: bool) -> None:
    """An out-of-domain prompt: a warning line (printed here, once), or with --strict the refusal."""
    import warnings

    from framecast.pipeline import PromptWarning

    for line in pipe.prompt_warnings(prompt):
        if strict:
            fail(f"{line}; rephrase it, or drop --strict to generate anyway")
        typer.echo(f"warning: {line}", err=True)
    warnings.filterwarnings("ignore", category=PromptWarning)


def _write_all(clip, a) -> None:
    """The same clip to every --output (each atomically; a failure leaves none half-written)."""
    from framecast.video import export_to_video

    for path in a.output:
        export_to_video(clip, path, fps=a.fps, caption=a.prompt, overwrite=a.overwrite)


def _call_options(a) -> dict:
    """The sampling options the user gave, as the pipeline's keywords (left out: the model's default;
    an option of another family is refused by the pipeline, naming it)."""
    return dict(negative_prompt=a.negative_prompt, num_inference_steps=a.steps, guidance_scale=a.guidance, height=a.height, width=a.width,
                **_given(sampler=a.sampler, schedule=a.schedule, decode=a.decode, temperature=a.temperature, top_k=a.top_k,
                         top_p=a.top_p, refine=a.refine, context_level=a.context_level, step_cache=a.step_cache,
                         first_steps=a.first_steps, sigmas=a.levels),
                **({"use_cache": False} if a.no_cache else {}), **a.switches)


def prompt_switches(values: list[str], no_recache: bool) -> dict:
    """--prompt-at FRAME:PROMPT (repeatable) and --no-recache as the pipeline's prompt_at and
    recache keywords; the pipeline checks the frames against the clip and the model."""
    from framecast.generators.prompt_at import parse_switch

    switches = [parse_switch(v, "--prompt-at", "FRAME:PROMPT", "--prompt-at '24:a big red circle moves up'") for v in values]
    if no_recache and not switches:
        raise ValueError("--no-recache changes what happens at a prompt switch; give --prompt-at FRAME:PROMPT, or drop --no-recache")
    return ({"prompt_at": switches} if switches else {}) | ({"recache": False} if no_recache else {})


def _generate_one(a) -> None:
    import torch

    pipe, given = _loaded(a)
    call = dict(num_frames=a.frames, context_frames=a.context_frames, **given, **_call_options(a))
    bar, on_step = progress_bar(pipe, a.prompt, call)
    with bar:
        out = pipe(a.prompt, generator=torch.Generator().manual_seed(a.seed), callback_on_step_end=on_step, **call)
    clip = out.frames[0]
    _write_all(clip, a)
    names = " and ".join(str(p) for p in a.output)
    cached = out.info.get("step_cache")
    skipped = f", {cached['skipped_block_passes']} of {cached['block_passes']} block passes skipped by --step-cache" if cached else ""
    typer.echo(f"wrote {names} ({clip.shape[0]} frames of {clip.shape[2]}x{clip.shape[1]}) in {out.seconds:.1f}s{skipped}")


def _generate_search(a) -> None:
    from framecast.eval.scaling import best_of_n, chunk_search, make_verifier

    pipe, given = _loaded(a)
    call_kwargs = _call_options(a)
    verify = make_verifier(a.verifier)
    if a.chunk is not None:
        found = chunk_search(pipe, a.prompt, a.best_of, seed=a.seed, chunk=a.chunk, num_frames=a.frames, verifier=verify, **call_kwargs)
        clip, picked = found["frames"], f"candidates {found['chosen']} of {a.best_of} for the chunks"
    else:  # the candidates are one batch: one pass of the bar
        bar, on_step = progress_bar(pipe, a.prompt, dict(num_frames=a.frames, **given, **call_kwargs))
        with bar:
            found = best_of_n(pipe, [a.prompt], a.best_of, seeds=[a.seed], verifier=verify, num_frames=a.frames, **given, **call_kwargs,
                              callback_on_step_end=on_step)
        clip = found["frames"][0]
        scores = ", ".join(f"{x:.2f}" for x in found["scores"][0])
        picked = f"candidate {found['chosen'][0]} of {a.best_of} ({verify.name} scores {scores})"
    _write_all(clip, a)
    names = " and ".join(str(p) for p in a.output)
    typer.echo(f"wrote {names} ({clip.shape[0]} frames of {clip.shape[2]}x{clip.shape[1]}), {picked}, in {found['seconds']:.1f}s")


def _generate_stream(a) -> None:
    import numpy as np
    import torch
    from tqdm import tqdm

    from framecast.video import Mp4Stream

    pipe, given = _loaded(a)
    kw = dict(num_frames=a.frames, generator=torch.Generator().manual_seed(a.seed), context_frames=a.context_frames, **given,
              **_call_options(a))
    frames_made = pipe.stream(a.prompt, **kw)  # checks the request before the file is opened
    output, chunks, made = a.output[0], [], 0
    total = a.frames if a.frames is not None else pipe.model.config.frames
    writer = Mp4Stream(output, fps=a.fps) if output.suffix.lower() == ".mp4" else None
    with writer or _nothing(), tqdm(total=total, desc="frames", unit="frame", file=sys.stderr, leave=False, dynamic_ncols=True,
                                       disable=None) as bar:
        for chunk in frames_made:
            made += chunk.shape[0]
            if writer is not None:
                writer.write(chunk)
            chunks.append(chunk)
            bar.update(chunk.shape[0])
            typer.echo(f"frames {made - chunk.shape[0]}-{made - 1} ready")
    if writer is None:
        _write_all(np.concatenate(chunks), a)
    typer.echo(f"wrote {output} ({made} frames)")


def _nothing():
    import contextlib

    return contextlib.nullcontext()


@app.command("eval")
def eval_(
    model: str = typer.Option("shapes-diffusion", "--model", "-m", help="a bundled model name or a model folder"),
    prompts: str = typer.Option("train", "--prompts", help="a Shapes split (train, compositional), paraphrase (the train captions "
                                "in other words, judged against the canonical caption) or a file with one prompt a line"),
    num: int = typer.Option(100, "--num", help=f"number of clips (at most {MAX_CLIPS})"),
    seed: int = typer.Option(0, "--seed", help="clip i is drawn with seed + i"),
    steps: Optional[int] = typer.Option(None, "--steps"),
    guidance: Optional[float] = typer.Option(None, "--guidance"),
    sampler: Optional[str] = typer.Option(None, "--sampler"),
    sigmas: Optional[str] = typer.Option(None, "--sigmas", help="diffusion and hybrid models: the noise levels of the steps, highest first, e.g. 1,0.75,0.5,0.25 (they set the steps)"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="hybrid and Wan models: autoregressive, pyramid or full; Wan: causal (chunks with the KV cache)"),
    decode: Optional[str] = typer.Option(None, "--decode", help="autoregressive models: raster, diagonal or set"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="autoregressive models"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="autoregressive models"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="autoregressive models"),
    refine: Optional[int] = typer.Option(None, "--refine", help="autoregressive models, set decoding: Gibbs sweeps over each token-frame"),
    context_level: Optional[float] = typer.Option(None, "--context-level", help="hybrid models: noise level of finished frames seen as context"),
    first_steps: Optional[int] = typer.Option(None, "--first-steps", help="hybrid models: steps of the first frame when nothing comes before it (default: the model's; 0: --steps)"),
    step_cache: Optional[float] = typer.Option(None, "--step-cache", help="diffusion and hybrid models: reuse a step's later blocks while the first block's output changes less than THRESHOLD (relative L1; 0: off; 0.15 to 0.3 on the bundled models)", metavar="THRESHOLD"),
    frames: Optional[int] = typer.Option(None, "--frames"),
    batch_size: int = typer.Option(10, "--batch-size", help=f"clips drawn at once (at most {MAX_BATCH}; bounded by memory)"),
    output: Path = typer.Option(Path("eval.json"), "--output", "-o", help="JSON report (a contact sheet .png is written beside it)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the report and sheet if they exist"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has it, else fp32), bf16 or fp32"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    best_of: int = typer.Option(1, "--best-of", help="draw N candidates a clip and keep the verifier's pick (test-time scaling)"),
    verifier: str = typer.Option("judge", "--verifier", help="for --best-of: judge, classifier or classifier:FOLDER"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="hybrid/AR with --best-of: pick among N candidates for each next CHUNK frames"),
    fvd_network: Optional[str] = typer.Option(None, "--fvd", help="also report FVD against real Shapes clips of the same prompts: "
                                              "'shapes' (the shipped classifier), 'shapes:FOLDER' or 'i3d:FILE' (.safetensors or TorchScript)"),
    threads: Optional[int] = typer.Option(None, "--threads", help=THREADS_HELP),
):
    """Generate clips for a prompt set, judge them with the Shapes judge, print a table, write JSON.

    Example: framecast eval -m shapes-hybrid --num 20 -o eval.json"""
    from PIL import Image

    from framecast.eval.evaluate import eval_set, evaluate, sheet_of_clips, write_report
    from framecast.pipeline import load
    from framecast.video import atomic_path

    apply_threads(threads)
    count("--num", num, hi=MAX_CLIPS)
    count("--batch-size", batch_size, hi=MAX_BATCH)
    count("--best-of", best_of, hi=MAX_CANDIDATES, why=" (candidates are drawn in one batch)")
    count("--chunk", chunk)
    sampling_numbers(steps=steps, guidance=guidance, temperature=temperature, top_k=top_k, top_p=top_p, frames=frames,
                     context_level=context_level, refine=refine, step_cache=step_cache, first_steps=first_steps)
    seed_range(seed, seeds_used(num, best_of, chunk))
    levels = sigma_list(sigmas, steps)
    outputs([output, output.with_suffix(".png")], overwrite, extensions=None)
    extractor = _fvd_network(fvd_network, prompts)  # before generating, so a bad network fails fast
    pipe = load(model, precision=precision, device=device)
    check_size(pipe, frames, steps_taken(steps, levels), max(min(batch_size, num), best_of), schedule=schedule)
    warning = card_warning(pipe, decode=decode, schedule=schedule, sampler=sampler)
    if warning:
        typer.echo(warning, err=True)
    texts, meanings = eval_set(prompts, num)
    skips = _skip_counter(step_cache)
    summary = evaluate(
        pipe, texts, meanings=meanings, seed=seed, batch_size=batch_size,
        num_inference_steps=steps, guidance_scale=guidance, sampler=sampler, num_frames=frames,
        best_of=best_of, verifier=verifier, chunk=chunk,
        **_given(schedule=schedule, decode=decode, temperature=temperature, top_k=top_k, top_p=top_p, refine=refine, context_level=context_level,
                 step_cache=skips, first_steps=first_steps, sigmas=levels),
    )
    _report_skips(summary, skips)
    if extractor is not None:
        from framecast.eval.fvd import shapes_fvd

        summary.update(shapes_fvd(summary["frames"], split=prompts, network=extractor))
    summary["prompts"] = prompts
    with atomic_path(output) as tmp, atomic_path(output.with_suffix(".png")) as tmp_png:
        write_report(summary, tmp)
        Image.fromarray(sheet_of_clips(summary["frames"])).save(tmp_png, format="PNG")
    _eval_table(pipe, summary, num, prompts, seed)
    typer.echo(f"wrote {output} and {output.with_suffix('.png')}")


def _fvd_network(name: str | None, prompts: str):
    """--fvd's feature network (None without it); the prompts must be a Shapes split to compare with."""
    if name is None:
        return None
    from framecast.data.shapes import SPLITS
    from framecast.eval.fvd import feature_network

    if prompts not in SPLITS:
        raise ValueError(f"--fvd compares with real Shapes clips, so --prompts must be a Shapes split ({', '.join(SPLITS)})")
    return feature_network(name)


def _skip_counter(step_cache: float | None):
    """--step-cache as one StepCache counting over every clip of an evaluation (None when off)."""
    from framecast.nn.step_cache import StepCache

    return StepCache(step_cache) if step_cache else None


def _report_skips(summary: dict, skips) -> None:
    """The block passes --step-cache skipped, into the evaluation's JSON (settings keep the threshold)."""
    if skips is not None:
        summary["settings"]["step_cache"] = skips.threshold
        summary["step_cache"] = skips.summary()


def _eval_table(pipe, summary: dict, num: int, prompts: str, seed: int) -> None:
    rows = [
        ("scene accuracy", summary["scene_accuracy"]), ("object accuracy", summary["object_accuracy"]),
        ("presence", summary["presence"]), ("shape", summary["shape"]), ("colour", summary["colour"]),
        ("direction", summary["direction"]), ("speed error", summary["speed_error"]),
        ("teleports / clip", summary["teleports_per_clip"]), ("extra objects", summary["extra_object_rate"]),
        ("seconds / clip", summary["seconds_per_clip"]),
    ]
    if "fvd" in summary:
        rows += [(f"FVD ({summary['fvd_clips']} clips)", summary["fvd"]), ("FVD real vs real", summary["fvd_real_vs_real"])]
    if "step_cache" in summary:
        rows.append(("blocks skipped", summary["step_cache"]["skipped_share"]))  # a share of the block passes, by --step-cache
    typer.echo(f"{pipe.name} on {num} '{prompts}' clips (seed {seed}):")
    for name, value in rows:
        typer.echo(f"  {name:<18} {value:8.3f}")


@app.command()
def lens(
    prompt: str = typer.Argument(..., help="the prompt to look at"),
    model: str = typer.Option("shapes-diffusion", "--model", "-m", help="a bundled model name or a model folder (every family)"),
    output: Path = typer.Option(Path("lens"), "--output", "-o", help="folder for the contact sheets and index.html"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the folder if it exists"),
    seed: int = typer.Option(0, "--seed"),
    steps: Optional[int] = typer.Option(None, "--steps"),
    layer_step: Optional[int] = typer.Option(None, "--layer-step", help="diffusion/hybrid: the step whose layers are read out"),
    frames: Optional[int] = typer.Option(None, "--frames"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
):
    """What the model believes the clip is at every step and every layer (a "logit lens" for video).
    A latent model's predictions are decoded to frames through its codec.

    Example: framecast lens "a big red circle moves right" -m shapes-hybrid --steps 2 --frames 4 -o lens"""
    from framecast.eval.lens import ar_lens, diffusion_lens, write_lens
    from framecast.pipeline import load
    from framecast.video import atomic_folder

    sampling_numbers(steps=steps, frames=frames)
    count("--layer-step", layer_step, lo=0, hi=MAX_STEPS)
    seed_range(seed)
    outputs([output], overwrite, extensions=None, folder=True)
    foreign = sorted(p.name for p in output.iterdir() if p.name not in LENS_FILES) if output.is_dir() else []
    if foreign:  # --overwrite replaces a lens folder, never a folder of other things
        raise ValueError(f"'{output}' holds files the lens did not write ({', '.join(foreign[:3])}); give a new folder name")
    pipe = load(model, precision="fp32", device=device)
    check_size(pipe, frames, steps)
    if pipe.model.family == "autoregressive":
        result = ar_lens(pipe, prompt, seed=seed, num_frames=frames)
    else:
        result = diffusion_lens(pipe, prompt, seed=seed, layer_step=layer_step, num_inference_steps=steps, num_frames=frames)
    with atomic_folder(output) as folder:
        matrix_png = None
        if pipe.model.family == "hybrid":
            from PIL import Image

            from framecast.sampling.noise_matrix import matrix_image

            matrix_png = folder / "matrix.png"
            matrix = pipe.noise_matrix(prompt, num_frames=frames, num_inference_steps=steps)
            Image.fromarray(matrix_image(matrix, cell=8, cell_width=32)).save(matrix_png)
        write_lens(result, folder, f"{pipe.name}: {prompt}", matrix_png)
    typer.echo(f"wrote {output / 'index.html'} ({len(result['steps'])} steps, {len(result['layers'])} layers)")


@app.command()
def arena(
    models: Optional[str] = typer.Option(None, "--models", help="comma-separated model names or folders (default: one bundled model a family)"),
    quick: bool = typer.Option(False, "--quick", help="fewer clips and settings: minutes instead of an hour"),
    output: Path = typer.Option(Path("arena"), "--output", "-o", help="folder for report.md, index.html, report.json and plots; or a .md file (the rest goes in the folder of its name)"),
    num: Optional[int] = typer.Option(None, "--num", help="clips of the main evaluation (default: 20 quick, 100 full)"),
    seed: int = typer.Option(0, "--seed"),
    verifier: str = typer.Option("classifier", "--verifier", help="best-of-N verifier: classifier (the judge if none is shipped) or judge"),
):
    """Compare the families on the same prompts and seeds: quality, FVD, coherence, speed, memory, drift, best-of-N.

    Example: framecast arena --quick -o arena"""
    import dataclasses
    import shlex
    import sys

    from framecast.eval.arena import FULL, QUICK, arena_folder, default_models, run_arena

    count("--num", num, hi=MAX_CLIPS)
    seed_range(seed, seeds_used(num or 100, 16))
    outputs([output], True, extensions=None, folder=output.suffix.lower() != ".md")
    plan = dataclasses.replace(QUICK if quick else FULL, seed=seed, verifier=verifier)
    if num is not None:
        plan = dataclasses.replace(plan, num=num)
    names = [m.strip() for m in models.split(",") if m.strip()] if models else default_models()
    command = "framecast " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    try:
        report = run_arena(names, output, plan, command=command, progress=typer.echo)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {report} and {arena_folder(output) / 'index.html'}")


@app.command()
def models(name: str = typer.Argument(None, help="a bundled name or model folder: print its model card")):
    """List the bundled models with their size and measured scores, or print one model's card.

    Example: framecast models shapes-hybrid"""
    from framecast.pipeline import bundled_models, is_wan_folder, model_card, resolve_model

    if name is not None:
        try:
            path = resolve_model(name)
        except ValueError as e:
            fail(str(e))
        if is_wan_folder(path):
            from framecast.generators.wan_describe import describe

            typer.echo(describe(path))
            return
        card = path / "README.md"
        if not card.is_file():
            fail(f"'{name}' has no model card (README.md)")
        typer.echo(card.read_text())
        return
    found = bundled_models()
    if not found:
        typer.echo("no bundled models are installed")
        return
    typer.echo(f"{'name':<24} {'family':<15} {'params':>8} {'size':>9}  scores")
    for name, path in found.items():
        card = model_card(path)
        sc = card["scores"]
        shown = {"scene_accuracy": "scene", "scene_accuracy_mean_of_draws": "scene (mean of noise draws)",
                 "paraphrase_scene_accuracy_mean_of_draws": "on paraphrases", "object_accuracy": "object",
                 "caption_accuracy": "captions right", "psnr_db": "PSNR dB", "seconds_per_clip": "s/clip", "clips": "clips"}
        score = ", ".join(f"{label} {sc[k]:.2f}" if k != "clips" else f"on {sc[k]} clips" for k, label in shown.items() if k in sc) or "not measured"
        typer.echo(f"{name:<24} {card['family']:<15} {card['params'] / 1e6:>7.2f}M {card['size_mb']:>7.1f}MB  {score}")
    typer.echo("\nframecast models NAME prints a model's card: what it is, how it was trained and scored, its limits;"
               "\nframecast prompts NAME the words and prompts it understands.")


@app.command()
def prompts(
    model: str = typer.Argument("shapes-diffusion", help="a bundled model name or a model folder"),
    num: int = typer.Option(5, "--num", help="example prompts to print (Shapes-trained models)"),
):
    """What a model understands: its words and, for a Shapes-trained model, the grammar with examples.

    Example: framecast prompts shapes-hybrid"""
    from framecast.data.shapes import COLOURS, DIRECTIONS, HELD_OUT_PAIRS, SHAPES, SIZES, VOCABULARY, sample_scene
    from framecast.generators.io import read_config
    from framecast.pipeline import resolve_model

    count("--num", num, lo=0, hi=100)
    path = resolve_model(model)
    config = read_config(path)
    if config.get("text_kind") == "pretrained":
        return _free_text_prompts(path.name, config["text"], num)
    words = (config.get("text") or {}).get("vocabulary")
    if not words:
        raise ValueError(f"'{path.name}' is a {config.get('family', 'model')} without a text encoder: it takes no prompt")
    typer.echo(f"{path.name} reads prompts of these {len(words)} words (lower case, separated by spaces; "
               f"at most {(config.get('text') or {}).get('max_words', '?')} words):")
    typer.echo("  " + " ".join(words))
    if not set(VOCABULARY) <= set(words):
        return
    typer.echo("\nIt was trained on Shapes captions:")
    typer.echo("  a <size> <colour> <shape> moves <direction> [and a <size> <colour> <shape> moves <direction>]")
    for name, values in (("size", SIZES), ("colour", COLOURS), ("shape", SHAPES), ("direction", DIRECTIONS)):
        typer.echo(f"  {name:<10} {' | '.join(values)}")
    held = ", ".join(f"{c} {s}" for c, s in sorted(HELD_OUT_PAIRS))
    typer.echo(f"  never seen in training (the compositional split): {held}")
    if num:
        typer.echo("Examples:")
        for i in range(num):
            typer.echo(f"  {sample_scene(i).caption}")


def _free_text_prompts(name: str, text: dict, num: int) -> None:
    import random

    from framecast.data.phrasing import COLOUR_WORDS, DEFAULTS, DIRECTION_WORDS, SHAPE_WORDS, SIZE_WORDS, describe
    from framecast.data.shapes import HELD_OUT_PAIRS, parse_caption, sample_scene

    typer.echo(f"{name} reads free text through the pretrained encoder '{text.get('source')}' (at most {text.get('max_tokens')} tokens).")
    typer.echo("It knows Shapes scenes, whose canonical captions are")
    typer.echo("  a <size> <colour> <shape> moves <direction> [and a <size> <colour> <shape> moves <direction>]")
    typer.echo("and reads them in other words too; for example")
    for values in (SIZE_WORDS, COLOUR_WORDS, SHAPE_WORDS, DIRECTION_WORDS):
        typer.echo("  " + "; ".join(f"{k}: {', '.join(v[:4])}" for k, v in values.items()))
    typer.echo(f"Left out, a size is {DEFAULTS['size']}, a shape a {DEFAULTS['shape']}, a direction {DEFAULTS['direction']} "
               "(or the other object's).")
    held = ", ".join(f"{c} {s}" for c, s in sorted(HELD_OUT_PAIRS))
    typer.echo(f"Never seen in training (the compositional split): {held}.")
    typer.echo(f"A prompt whose nearest known caption has a similarity below {text.get('ood_similarity', 0):.2f} gets a warning "
               "naming that caption (generate --strict refuses it).")
    if num:
        typer.echo("Examples (canonical caption, then the same scene in other words):")
        rng = random.Random(0)
        for i in range(num):
            caption = sample_scene(i).caption
            typer.echo(f"  {caption}\n    {describe(parse_caption(caption), rng, drop=0.0, canonical=0.0)[0]}")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but loopback needs --api-key"),
    port: int = typer.Option(8000, "--port"),
    models: List[str] = typer.Option([], "--models", help="models to offer: --models a,b or --models a --models b (default: every bundled generator)"),
    queue_size: int = typer.Option(8, "--queue-size", help="jobs waiting before new requests get 429"),
    workers: int = typer.Option(1, "--workers", help="generations run at once (one each; the cores are shared among them)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="PyTorch threads per worker (default: FRAMECAST_THREADS, else the free cores / --workers)"),
    state_dir: Path = typer.Option(Path("framecast-serve"), "--state-dir", help="the job database and result files"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="FRAMECAST_API_KEY", help="required on every route but /healthz"),
    retention_hours: float = typer.Option(168.0, "--retention-hours", help="finished jobs and their files are removed after this"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    no_page: bool = typer.Option(False, "--no-page", help="the HTTP API only, without the web page at /"),
):
    """Serve the HTTP job API (/v1/videos, OpenAPI at /docs) and the web page at /; needs the serve extra.

    Example: framecast serve --port 8000 --models shapes-hybrid,shapes-diffusion"""
    try:
        from framecast.serve.main import run_server
    except ImportError as e:
        fail(f"framecast serve needs the serve extra ({e.name} is missing): pip install 'framecast[serve]'")
    try:
        names = [n.strip() for m in models for n in m.split(",") if n.strip()]
        run_server(host=host, port=port, models=names or None, queue_size=queue_size, workers=workers, state_dir=state_dir,
                   api_key=api_key, retention_s=retention_hours * 3600, device=device, page=not no_page, threads=threads)
    except ValueError as e:
        fail(str(e))


schedule_app = Typer(no_args_is_help=True, help="Noise-level matrices (hybrid sampling schedules).")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("show")
def schedule_show(
    name: str = typer.Argument(..., help="full, autoregressive or pyramid"),
    frames: int = typer.Option(8, "--frames", help=f"token-frames (columns), at most {SCHEDULE_SHOW['frames']}"),
    steps: int = typer.Option(10, "--steps", help=f"denoising steps per frame, at most {SCHEDULE_SHOW['steps']}"),
    offset: Optional[int] = typer.Option(None, "--offset", help="pyramid: rows between neighbouring columns"),
    shift: float = typer.Option(1.0, "--shift"),
    first_steps: int = typer.Option(0, "--first-steps", help="autoregressive, pyramid: steps of frame 0 alone before the rest"),
    output: Path = typer.Option(Path("schedule.png"), "--output", "-o", help=".png (or .jpg, .bmp)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the picture if it exists"),
):
    """Draw a noise-level matrix K[step, frame]: white = pure noise, black = clean.

    Example: framecast schedule show pyramid --frames 8 --steps 10 -o pyramid.png"""
    from PIL import Image, ImageDraw

    from framecast.sampling.noise_matrix import SCHEDULES, build_matrix, matrix_image, matrix_steps
    from framecast.video import atomic_path

    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule '{name}'; choose one of {', '.join(SCHEDULES)}")
    count("--frames", frames, hi=SCHEDULE_SHOW["frames"], why=" (columns of the picture)")
    count("--steps", steps, hi=SCHEDULE_SHOW["steps"], why=" (rows of the picture)")
    count("--offset", offset, lo=0, hi=SCHEDULE_SHOW["steps"])
    count("--first-steps", first_steps, lo=0, hi=SCHEDULE_SHOW["steps"])
    real("--shift", shift, lo=0.0, hi=MAX_SHIFT, above=True)
    rows = matrix_steps(name, frames, steps, offset=offset, first_steps=first_steps)
    if rows > SCHEDULE_SHOW["rows"]:
        raise ValueError(f"schedule '{name}' with --frames {frames} and --steps {steps} has {rows} rows, above the limit of "
                         f"{SCHEDULE_SHOW['rows']} a picture shows; give fewer frames or steps")
    outputs([output], overwrite, extensions=(".png", ".jpg", ".jpeg", ".bmp"))
    m = build_matrix(name, frames, steps, shift=shift, offset=offset, first_steps=first_steps)
    rows, cols = m.levels.shape
    grid = Image.fromarray(matrix_image(m, cell=max(3, min(24, 480 // rows)), cell_width=max(12, min(48, 480 // cols))))
    pad_top, pad_left = 40, 8
    canvas = Image.new("RGB", (max(grid.width, 300) + 2 * pad_left, grid.height + pad_top + 8), (40, 40, 40))
    canvas.paste(grid, (pad_left, pad_top))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad_left, 4), f"{name}: {m.steps} steps x {m.frames} frames, {m.model_calls()} model calls", fill=(230, 230, 230))
    draw.text((pad_left, 20), "frame ->   step v   white = noise, black = clean", fill=(170, 170, 170))
    with atomic_path(output) as tmp:
        canvas.save(tmp, format=Image.registered_extensions()[output.suffix.lower()])
    typer.echo(f"{name}: {m.steps} steps x {m.frames} frames, {m.model_calls()} model calls; wrote {output}")


data_app = Typer(no_args_is_help=True, help="Look at data sets.")
app.add_typer(data_app, name="data")


@data_app.command("scan")
def data_scan(
    directory: Path = typer.Argument(..., help="a folder of videos and/or frame folders, with captions"),
    frames: int = typer.Option(16, "--frames", help="frames a training window needs (data.frames)"),
    stride: int = typer.Option(1, "--stride", help="frames between sampled frames (data.stride)"),
):
    """List what a video folder holds: usable clips, the caption layout, frames, resolutions, and each
    skipped file with the reason.

    Example: framecast data scan my_videos --frames 16"""
    from framecast.data.folder import scan, summary

    try:
        report = scan(directory, frames=frames, stride=stride, progress=True)
    except ValueError as e:
        fail(str(e))
    typer.echo(summary(report, shown=10**9)[0].removeprefix("data: "))
    frames_ = report.frames
    if frames_:
        typer.echo(f"frames per clip: min {min(frames_)}, median {sorted(frames_)[len(frames_) // 2]}, max {max(frames_)}; {sum(frames_)} in all")
    for res, n in sorted(report.resolutions.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {res}: {n} clips")
    for line in summary(report, shown=10**9)[1:]:
        typer.echo(line)


@data_app.command("preview")
def data_preview(
    source: str = typer.Argument("shapes", help="the data set: shapes"),
    output: Path = typer.Option(Path("shapes.png"), "--output", "-o", help="contact sheet (.png), or .gif/.mp4/.npy of the first clip"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace the output if it exists"),
    num: int = typer.Option(8, "--num", help="clips, one per row (at most 256)"),
    split: str = typer.Option("train", "--split"),
    size: int = typer.Option(32, "--size", help="canvas side: 32, 64, ... (at most 512)"),
    frames: int = typer.Option(16, "--frames", help="frames a clip (at most 256)"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a contact sheet of clips (rows) and frames (columns), captions printed.

    Example: framecast data preview shapes --num 4 -o shapes.png"""
    import numpy as np
    from PIL import Image

    from framecast.data.shapes import render_clip
    from framecast.video import atomic_path, contact_sheet, export_to_video

    if source != "shapes":
        fail(f"unknown data set '{source}'; framecast previews: shapes")
    count("--num", num, hi=256)
    count("--frames", frames, hi=256)
    count("--size", size, hi=512)
    seed_range(seed, num)
    outputs([output], overwrite)
    clips = [render_clip(seed + i, split=split, size=size, frames=frames) for i in range(num)]
    if output.suffix.lower() == ".png":
        sheet = contact_sheet(np.concatenate([c.video for c in clips]), columns=frames, scale=max(1, 64 // size))
        with atomic_path(output) as tmp:
            Image.fromarray(sheet).save(tmp, format="PNG")
    else:
        export_to_video(clips[0].video, output, caption=clips[0].caption)
    for i, c in enumerate(clips):
        typer.echo(f"{i}: {c.caption}")
    typer.echo(f"wrote {output}")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        sys.exit(130)


if __name__ == "__main__":
    main()
