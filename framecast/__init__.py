"""framecast: autoregressive, diffusion and hybrid video generation on one shared core."""

__version__ = "0.1.0"


def load(name_or_path: str, **kwargs):
    """A bundled model name (see `framecast models`) or a model folder -> a callable pipeline.
    Keywords: device ("auto", "cpu", "cuda", "cuda:N") and precision ("auto", "bf16", "fp32"); a Wan
    model folder also takes its settings and `transformer=` (docs/wan.md)."""
    from framecast.pipeline import load as _load

    return _load(name_or_path, **kwargs)


def export_to_video(video, path: str, fps: int = 8, **kwargs):
    """Write frames (a pipeline output of any decoded output_type, (T, H, W, 3) uint8, or a
    (T, C, H, W) tensor in [-1, 1]) to .mp4, .gif, .png (contact sheet) or .npy."""
    from framecast.video import export_to_video as _export

    return _export(_first_clip(video), path, fps=fps, **kwargs)


def _first_clip(video):
    """A pipeline output's first clip as uint8 frames, whatever its output_type."""
    output_type = getattr(video, "output_type", "np")
    if output_type == "latent":
        raise ValueError("export_to_video needs decoded frames; call the pipeline with output_type 'np', 'pt' or 'pil'")
    if output_type == "pt":  # (B, T, 3, H, W) in [0, 1]
        return (video.frames[0].permute(0, 2, 3, 1) * 255).round().clamp(0, 255).byte().numpy()
    if output_type == "pil":
        import numpy as np

        return np.stack([np.asarray(im.convert("RGB")) for im in video.frames[0]])
    return video


__all__ = ["__version__", "export_to_video", "load"]
