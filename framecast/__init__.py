"""framecast: autoregressive, diffusion and hybrid video generation on one shared core."""

__version__ = "0.1.0"


def load(name_or_path: str, **kwargs):
    """A bundled model name (see `framecast models`) or a model folder -> a callable pipeline."""
    from framecast.pipeline import load as _load

    return _load(name_or_path, **kwargs)


def export_to_video(video, path: str, fps: int = 8, **kwargs):
    """Write frames (a pipeline output, (T, H, W, 3) uint8, or a (T, C, H, W) tensor in [-1, 1])
    to .mp4, .gif, .png (contact sheet) or .npy."""
    from framecast.video import export_to_video as _export

    return _export(video, path, fps=fps, **kwargs)


__all__ = ["__version__", "export_to_video", "load"]
