"""Layer 1, the command line: parse, validate, call a pipeline, print. `framecast --help`."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="framecast: train, generate and measure video generators.")


@app.callback()
def _root() -> None:
    """framecast: train, generate and measure video generators."""


def _given(**options) -> dict:
    """The family-specific options the user gave (None: the model's default), to pass on as keywords."""
    return {k: v for k, v in options.items() if v is not None}


def fail(message: str, code: int = 2) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


@app.command()
def train(
    recipe: Optional[str] = typer.Argument(None, help="a recipe name (e.g. shapes-diffusion-small) or a YAML file"),
    set_: List[str] = typer.Option([], "--set", help="override a config key: --set optim.lr=1e-4 (repeatable)"),
    resume: Optional[Path] = typer.Option(None, "--resume", help="a run folder (or checkpoint folder) to continue"),
    out: Optional[Path] = typer.Option(None, "--out", help="run folder (default: the recipe's out_dir)"),
    dry_run: bool = typer.Option(False, "--dry-run", help="build everything, take two steps, keep nothing"),
):
    """Train a model from a recipe or YAML; checkpoints are atomic and `--resume` continues exactly.
    Launch with `torchrun --nproc_per_node N -m framecast.cli train ...` for DDP (or --set parallel=fsdp)."""
    from framecast.train.recipes import load_config, load_run_config
    from framecast.train.trainer import train as run_train

    try:
        if recipe is None:
            if resume is None:
                fail("give a recipe or YAML file to train, or --resume RUN_DIR")
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
    writing to the run's out_dir; AdamW's moments start afresh and the learning rate warms up again."""
    from framecast.train.checkpoint import pack_checkpoint

    try:
        dest = pack_checkpoint(source, output)
    except ValueError as e:
        fail(str(e))
    size = sum(f.stat().st_size for f in dest.iterdir()) / 2**20
    typer.echo(f"packed {source} into {dest} ({size:.1f} MB)")


@app.command()
def generate(
    prompt: str = typer.Argument(..., help="what to show, e.g. 'a big red circle moves right'"),
    model: str = typer.Option("shapes-diffusion", "--model", "-m", help="a bundled model name or a model folder"),
    output: Path = typer.Option(Path("clip.mp4"), "--output", "-o", help="file to write: .mp4, .gif, .png (contact sheet) or .npy"),
    seed: int = typer.Option(0, "--seed"),
    steps: Optional[int] = typer.Option(None, "--steps", help="sampling steps (default: the model's)"),
    guidance: Optional[float] = typer.Option(None, "--guidance", help="classifier-free guidance scale (default: the model's)"),
    frames: Optional[int] = typer.Option(None, "--frames", help="clip length (default: the model's training length)"),
    negative_prompt: Optional[str] = typer.Option(None, "--negative-prompt", help="steer away from this prompt"),
    sampler: Optional[str] = typer.Option(None, "--sampler", help="euler, euler-ancestral, euler-stochastic, heun or dpmpp-2m (default: the model's)"),
    image: Optional[Path] = typer.Option(None, "--image", help="first frame to start from (image to video)"),
    video: Optional[Path] = typer.Option(None, "--video", help="clip to continue"),
    context_frames: Optional[int] = typer.Option(None, "--context-frames", help="how many frames of --video to keep"),
    fps: int = typer.Option(8, "--fps"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has it, else fp32), bf16 or fp32"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="hybrid models: autoregressive, pyramid or full"),
    stream: bool = typer.Option(False, "--stream", help="hybrid models: write frames as they are made"),
    no_cache: bool = typer.Option(False, "--no-cache", help="hybrid and AR models: recompute the context at every step"),
    context_level: Optional[float] = typer.Option(None, "--context-level", help="hybrid models: noise level of finished frames seen as context"),
    decode: Optional[str] = typer.Option(None, "--decode", help="autoregressive models: raster, diagonal or set"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="autoregressive models"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="autoregressive models"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="autoregressive models"),
    refine: Optional[int] = typer.Option(None, "--refine", help="autoregressive models, set decoding: Gibbs sweeps over each token-frame"),
    best_of: int = typer.Option(1, "--best-of", help="draw N candidates and keep the verifier's pick (test-time scaling)"),
    verifier: str = typer.Option("judge", "--verifier", help="for --best-of: judge (Shapes prompts), classifier or classifier:FOLDER"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="hybrid/AR with --best-of: pick among N candidates for each next CHUNK frames"),
):
    """Generate a clip from a text prompt."""
    import torch

    from framecast.pipeline import load
    from framecast.video import WRITE_EXTENSIONS, export_to_video

    if output.suffix.lower() not in WRITE_EXTENSIONS:
        fail(f"cannot write '{output}': the output must end in {', '.join(WRITE_EXTENSIONS)}")
    if frames is not None and frames <= 0:
        fail(f"--frames must be > 0, got {frames}")
    if steps is not None and steps <= 0:
        fail(f"--steps must be > 0, got {steps}")
    if best_of < 1:
        fail(f"--best-of must be >= 1, got {best_of}")
    if stream and (best_of > 1 or chunk is not None):
        fail("--stream writes frames as they are made, so it cannot search among candidates; drop --best-of/--chunk or --stream")
    if stream:
        return _generate_stream(prompt, model, output, seed, steps, guidance, frames, negative_prompt, schedule, no_cache, image, video,
                                context_frames, fps, precision, device, context_level)
    if best_of > 1 or chunk is not None:
        return _generate_search(prompt, model, output, seed, best_of, verifier, chunk, fps, precision, device, frames,
                                dict(negative_prompt=negative_prompt, num_inference_steps=steps, guidance_scale=guidance, sampler=sampler,
                                     **({"schedule": schedule} if schedule else {}),
                                     **_given(decode=decode, temperature=temperature, top_k=top_k, top_p=top_p, refine=refine, context_level=context_level)))
    try:
        pipe = load(model, precision=precision, device=device)
        out = pipe(
            prompt,
            negative_prompt=negative_prompt,
            num_frames=frames,
            num_inference_steps=steps,
            guidance_scale=guidance,
            generator=torch.Generator().manual_seed(seed),
            sampler=sampler,
            image=image,
            video=video,
            context_frames=context_frames,
            **({"schedule": schedule, "use_cache": not no_cache} if schedule or no_cache else {}),
            **_given(decode=decode, temperature=temperature, top_k=top_k, top_p=top_p, refine=refine, context_level=context_level),
        )
        export_to_video(out, output, fps=fps)
    except ValueError as e:
        fail(str(e))
    clip = out.frames[0]
    typer.echo(f"wrote {output} ({clip.shape[0]} frames of {clip.shape[2]}x{clip.shape[1]}) in {out.seconds:.1f}s")


def _generate_search(prompt, model, output, seed, best_of, verifier, chunk, fps, precision, device, frames, call_kwargs):
    from framecast.eval.scaling import best_of_n, chunk_search, make_verifier
    from framecast.pipeline import load
    from framecast.video import export_to_video

    try:
        pipe = load(model, precision=precision, device=device)
        verify = make_verifier(verifier)
        if chunk is not None:
            found = chunk_search(pipe, prompt, best_of, seed=seed, chunk=chunk, num_frames=frames, verifier=verify, **call_kwargs)
            clip, picked = found["frames"], f"candidates {found['chosen']} of {best_of} for the chunks"
        else:
            found = best_of_n(pipe, [prompt], best_of, seeds=[seed], verifier=verify, num_frames=frames, **call_kwargs)
            clip = found["frames"][0]
            scores = ", ".join(f"{x:.2f}" for x in found["scores"][0])
            picked = f"candidate {found['chosen'][0]} of {best_of} ({verify.name} scores {scores})"
        export_to_video(clip, output, fps=fps)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {output} ({clip.shape[0]} frames of {clip.shape[2]}x{clip.shape[1]}), {picked}, in {found['seconds']:.1f}s")


def _generate_stream(prompt, model, output, seed, steps, guidance, frames, negative_prompt, schedule, no_cache, image, video,
                     context_frames, fps, precision, device, context_level=None):
    import time

    import numpy as np
    import torch

    from framecast.pipeline import load
    from framecast.video import Mp4Stream, export_to_video

    chunks = []
    try:
        pipe = load(model, precision=precision, device=device)
        kw = dict(negative_prompt=negative_prompt, num_frames=frames, num_inference_steps=steps, guidance_scale=guidance,
                  generator=torch.Generator().manual_seed(seed), schedule=schedule, use_cache=not no_cache, image=image,
                  video=video, context_frames=context_frames, context_level=context_level)
        frames_made = pipe.stream(prompt, **kw)  # checks the request before the file is opened
        writer = Mp4Stream(output, fps=fps) if output.suffix.lower() == ".mp4" else None
        start, made = time.perf_counter(), 0
        for chunk in frames_made:
            made += chunk.shape[0]
            if writer is not None:
                writer.write(chunk)
            chunks.append(chunk)
            typer.echo(f"frames {made - chunk.shape[0]}-{made - 1} ready ({made / (time.perf_counter() - start):.1f} frames/s)")
        if writer is not None:
            writer.close()
        else:
            export_to_video(np.concatenate(chunks), output, fps=fps)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {output} ({made} frames)")


@app.command("eval")
def eval_(
    model: str = typer.Option("shapes-diffusion", "--model", "-m", help="a bundled model name or a model folder"),
    prompts: str = typer.Option("train", "--prompts", help="a Shapes split (train, compositional) or a file with one prompt a line"),
    num: int = typer.Option(100, "--num", help="number of clips"),
    seed: int = typer.Option(0, "--seed", help="clip i is drawn with seed + i"),
    steps: Optional[int] = typer.Option(None, "--steps"),
    guidance: Optional[float] = typer.Option(None, "--guidance"),
    sampler: Optional[str] = typer.Option(None, "--sampler"),
    schedule: Optional[str] = typer.Option(None, "--schedule", help="hybrid models: autoregressive, pyramid or full"),
    decode: Optional[str] = typer.Option(None, "--decode", help="autoregressive models: raster, diagonal or set"),
    temperature: Optional[float] = typer.Option(None, "--temperature", help="autoregressive models"),
    top_k: Optional[int] = typer.Option(None, "--top-k", help="autoregressive models"),
    top_p: Optional[float] = typer.Option(None, "--top-p", help="autoregressive models"),
    refine: Optional[int] = typer.Option(None, "--refine", help="autoregressive models, set decoding: Gibbs sweeps over each token-frame"),
    context_level: Optional[float] = typer.Option(None, "--context-level", help="hybrid models: noise level of finished frames seen as context"),
    frames: Optional[int] = typer.Option(None, "--frames"),
    batch_size: int = typer.Option(10, "--batch-size"),
    output: Path = typer.Option(Path("eval.json"), "--output", "-o", help="JSON report (a contact sheet .png is written beside it)"),
    precision: str = typer.Option("auto", "--precision", help="auto (bf16 where the hardware has it, else fp32), bf16 or fp32"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    best_of: int = typer.Option(1, "--best-of", help="draw N candidates a clip and keep the verifier's pick (test-time scaling)"),
    verifier: str = typer.Option("judge", "--verifier", help="for --best-of: judge, classifier or classifier:FOLDER"),
    chunk: Optional[int] = typer.Option(None, "--chunk", help="hybrid/AR with --best-of: pick among N candidates for each next CHUNK frames"),
    fvd_network: Optional[str] = typer.Option(None, "--fvd", help="also report FVD against real Shapes clips of the same prompts: "
                                              "'shapes' (the shipped classifier), 'shapes:FOLDER' or 'i3d:FILE' (.safetensors or TorchScript)"),
):
    """Generate clips for a prompt set, judge them with the Shapes judge, print a table, write JSON."""
    from PIL import Image

    from framecast.eval.evaluate import eval_prompts, evaluate, sheet_of_clips, write_report
    from framecast.pipeline import load

    if num <= 0:
        fail(f"--num must be > 0, got {num}")
    try:
        extractor = None
        if fvd_network is not None:  # before generating, so a bad network fails fast
            from framecast.data.shapes import SPLITS
            from framecast.eval.fvd import feature_network, shapes_fvd

            if prompts not in SPLITS:
                raise ValueError(f"--fvd compares with real Shapes clips, so --prompts must be a Shapes split ({', '.join(SPLITS)})")
            extractor = feature_network(fvd_network)
        pipe = load(model, precision=precision, device=device)
        summary = evaluate(
            pipe, eval_prompts(prompts, num), seed=seed, batch_size=batch_size,
            num_inference_steps=steps, guidance_scale=guidance, sampler=sampler, num_frames=frames,
            best_of=best_of, verifier=verifier, chunk=chunk,
            **_given(schedule=schedule, decode=decode, temperature=temperature, top_k=top_k, top_p=top_p, refine=refine, context_level=context_level),
        )
        if extractor is not None:
            summary.update(shapes_fvd(summary["frames"], split=prompts, network=extractor))
    except ValueError as e:
        fail(str(e))
    summary["prompts"] = prompts
    write_report(summary, output)
    Image.fromarray(sheet_of_clips(summary["frames"])).save(output.with_suffix(".png"))
    rows = [
        ("scene accuracy", summary["scene_accuracy"]), ("object accuracy", summary["object_accuracy"]),
        ("presence", summary["presence"]), ("shape", summary["shape"]), ("colour", summary["colour"]),
        ("direction", summary["direction"]), ("speed error", summary["speed_error"]),
        ("teleports / clip", summary["teleports_per_clip"]), ("extra objects", summary["extra_object_rate"]),
        ("seconds / clip", summary["seconds_per_clip"]),
    ]
    if "fvd" in summary:
        rows += [(f"FVD ({summary['fvd_clips']} clips)", summary["fvd"]), ("FVD real vs real", summary["fvd_real_vs_real"])]
    typer.echo(f"{pipe.name} on {num} '{prompts}' clips (seed {seed}):")
    for name, value in rows:
        typer.echo(f"  {name:<18} {value:8.3f}")
    typer.echo(f"wrote {output} and {output.with_suffix('.png')}")


@app.command()
def lens(
    prompt: str = typer.Argument(..., help="the prompt to look at"),
    model: str = typer.Option("shapes-diffusion", "--model", "-m"),
    output: Path = typer.Option(Path("lens"), "--output", "-o", help="folder for the contact sheets and index.html"),
    seed: int = typer.Option(0, "--seed"),
    steps: Optional[int] = typer.Option(None, "--steps"),
    layer_step: Optional[int] = typer.Option(None, "--layer-step", help="diffusion/hybrid: the step whose layers are read out"),
    frames: Optional[int] = typer.Option(None, "--frames"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
):
    """What the model believes the clip is at every step and every layer (a "logit lens" for video)."""
    from framecast.eval.lens import ar_lens, diffusion_lens, write_lens
    from framecast.pipeline import load

    try:
        pipe = load(model, precision="fp32", device=device)
        if pipe.model.family == "autoregressive":
            result = ar_lens(pipe, prompt, seed=seed, num_frames=frames)
        else:
            result = diffusion_lens(pipe, prompt, seed=seed, layer_step=layer_step, num_inference_steps=steps, num_frames=frames)
        matrix_png = None
        if pipe.model.family == "hybrid":
            from PIL import Image

            from framecast.sampling.noise_matrix import matrix_image

            output.mkdir(parents=True, exist_ok=True)
            matrix_png = output / "matrix.png"
            matrix = pipe.noise_matrix(prompt, num_frames=frames, num_inference_steps=steps)
            Image.fromarray(matrix_image(matrix, cell=8, cell_width=32)).save(matrix_png)
        page = write_lens(result, output, f"{pipe.name}: {prompt}", matrix_png)
    except ValueError as e:
        fail(str(e))
    typer.echo(f"wrote {page} ({len(result['steps'])} steps, {len(result['layers'])} layers)")


@app.command()
def arena(
    models: Optional[str] = typer.Option(None, "--models", help="comma-separated model names or folders (default: one bundled model a family)"),
    quick: bool = typer.Option(False, "--quick", help="fewer clips and settings: minutes instead of an hour"),
    output: Path = typer.Option(Path("arena"), "--output", "-o", help="folder for report.md, index.html, report.json and plots; or a .md file (the rest goes in the folder of its name)"),
    num: Optional[int] = typer.Option(None, "--num", help="clips of the main evaluation (default: 20 quick, 100 full)"),
    seed: int = typer.Option(0, "--seed"),
    verifier: str = typer.Option("classifier", "--verifier", help="best-of-N verifier: classifier (the judge if none is shipped) or judge"),
):
    """Compare the families on the same prompts and seeds: quality, FVD, coherence, speed, memory, drift, best-of-N."""
    import dataclasses
    import shlex
    import sys

    from framecast.eval.arena import FULL, QUICK, arena_folder, default_models, run_arena

    plan = dataclasses.replace(QUICK if quick else FULL, seed=seed, verifier=verifier)
    if num is not None:
        if num <= 0:
            fail(f"--num must be > 0, got {num}")
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
    from framecast.pipeline import bundled_models, model_card, resolve_model

    if name is not None:
        try:
            card = resolve_model(name) / "README.md"
        except ValueError as e:
            fail(str(e))
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
        shown = {"scene_accuracy": "scene", "scene_accuracy_mean_of_draws": "scene (mean of noise draws)", "object_accuracy": "object",
                 "caption_accuracy": "captions right", "psnr_db": "PSNR dB", "seconds_per_clip": "s/clip", "clips": "clips"}
        score = ", ".join(f"{label} {sc[k]:.2f}" if k != "clips" else f"on {sc[k]} clips" for k, label in shown.items() if k in sc) or "not measured"
        typer.echo(f"{name:<24} {card['family']:<15} {card['params'] / 1e6:>7.2f}M {card['size_mb']:>7.1f}MB  {score}")
    typer.echo("\nframecast models NAME prints a model's card: what it is, how it was trained and scored, its limits.")


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="address to listen on; anything but loopback needs --api-key"),
    port: int = typer.Option(8000, "--port"),
    models: List[str] = typer.Option([], "--models", help="models to offer: --models a,b or --models a --models b (default: every bundled generator)"),
    queue_size: int = typer.Option(8, "--queue-size", help="jobs waiting before new requests get 429"),
    workers: int = typer.Option(1, "--workers", help="generations run at once (one each; the cores are shared among them)"),
    threads: Optional[int] = typer.Option(None, "--threads", help="PyTorch threads per worker (default: the cores / --workers)"),
    state_dir: Path = typer.Option(Path("framecast-serve"), "--state-dir", help="the job database and result files"),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="FRAMECAST_API_KEY", help="required on every route but /healthz"),
    retention_hours: float = typer.Option(168.0, "--retention-hours", help="finished jobs and their files are removed after this"),
    device: str = typer.Option("auto", "--device", help="auto (the GPU when PyTorch sees one), cpu, cuda or cuda:N"),
    no_page: bool = typer.Option(False, "--no-page", help="the HTTP API only, without the web page at /"),
):
    """Serve the HTTP job API (/v1/videos, OpenAPI at /docs) and the web page at /; needs the serve extra."""
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


schedule_app = typer.Typer(no_args_is_help=True, help="Noise-level matrices (hybrid sampling schedules).")
app.add_typer(schedule_app, name="schedule")


@schedule_app.command("show")
def schedule_show(
    name: str = typer.Argument(..., help="full, autoregressive or pyramid"),
    frames: int = typer.Option(8, "--frames", help="token-frames (columns)"),
    steps: int = typer.Option(10, "--steps", help="denoising steps per frame"),
    offset: Optional[int] = typer.Option(None, "--offset", help="pyramid: rows between neighbouring columns"),
    shift: float = typer.Option(1.0, "--shift"),
    output: Path = typer.Option(Path("schedule.png"), "--output", "-o"),
):
    """Draw a noise-level matrix K[step, frame]: white = pure noise, black = clean."""
    from PIL import Image, ImageDraw

    from framecast.sampling.noise_matrix import build_matrix, matrix_image

    try:
        m = build_matrix(name, frames, steps, shift=shift, offset=offset)
    except ValueError as e:
        fail(str(e))
    rows, cols = m.levels.shape
    grid = Image.fromarray(matrix_image(m, cell=max(3, min(24, 480 // rows)), cell_width=max(12, min(48, 480 // cols))))
    pad_top, pad_left = 40, 8
    canvas = Image.new("RGB", (max(grid.width, 300) + 2 * pad_left, grid.height + pad_top + 8), (40, 40, 40))
    canvas.paste(grid, (pad_left, pad_top))
    draw = ImageDraw.Draw(canvas)
    draw.text((pad_left, 4), f"{name}: {m.steps} steps x {m.frames} frames, {m.model_calls()} model calls", fill=(230, 230, 230))
    draw.text((pad_left, 20), "frame ->   step v   white = noise, black = clean", fill=(170, 170, 170))
    canvas.save(output)
    typer.echo(f"{name}: {m.steps} steps x {m.frames} frames, {m.model_calls()} model calls; wrote {output}")


data_app = typer.Typer(no_args_is_help=True, help="Look at data sets.")
app.add_typer(data_app, name="data")


@data_app.command("scan")
def data_scan(directory: Path = typer.Argument(..., help="a folder of videos and/or frame folders, with captions")):
    """List what a video folder holds: clips, frames, resolutions, captions, unreadable files."""
    from framecast.data.folder import scan

    try:
        report = scan(directory)
    except ValueError as e:
        fail(str(e))
    frames = report.frames
    typer.echo(f"{directory}: {len(report.entries)} readable clips ({report.captioned} with captions), {len(report.unreadable)} unreadable")
    if frames:
        typer.echo(f"frames per clip: min {min(frames)}, median {sorted(frames)[len(frames) // 2]}, max {max(frames)}; {sum(frames)} in all")
    for res, n in sorted(report.resolutions.items(), key=lambda kv: -kv[1]):
        typer.echo(f"  {res}: {n} clips")
    for path, why in report.unreadable:
        typer.echo(f"  unreadable: {path}: {why}")


@data_app.command("preview")
def data_preview(
    source: str = typer.Argument("shapes", help="the data set: shapes"),
    output: Path = typer.Option(Path("shapes.png"), "--output", "-o", help="contact sheet (.png), or .gif/.mp4 of the first clip"),
    num: int = typer.Option(8, "--num", help="clips, one per row"),
    split: str = typer.Option("train", "--split"),
    size: int = typer.Option(32, "--size"),
    frames: int = typer.Option(16, "--frames"),
    seed: int = typer.Option(0, "--seed"),
):
    """Write a contact sheet of clips (rows) and frames (columns), captions printed."""
    import numpy as np
    from PIL import Image

    from framecast.data.shapes import render_clip
    from framecast.video import contact_sheet, export_to_video

    if source != "shapes":
        fail(f"unknown data set '{source}'; framecast previews: shapes")
    if frames <= 0 or num <= 0:
        fail("--frames and --num must be > 0")
    try:
        clips = [render_clip(seed + i, split=split, size=size, frames=frames) for i in range(num)]
    except ValueError as e:
        fail(str(e))
    if output.suffix.lower() == ".png":
        sheet = contact_sheet(np.concatenate([c.video for c in clips]), columns=frames, scale=max(1, 64 // size))
        Image.fromarray(sheet).save(output)
    else:
        try:
            export_to_video(clips[0].video, output)
        except ValueError as e:
            fail(str(e))
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
