"""`framecast serve`: an HTTP job API and a web page over the pipeline the CLI uses.

Needs the `serve` extra (`pip install framecast[serve]`): FastAPI, uvicorn, Gradio. Nothing below
this package imports it, so the library and the other commands work without them.
"""

from __future__ import annotations


def create_app(config=None, *, webapp: bool = False):
    """The FastAPI app (the Gradio page mounted at / when `webapp`)."""
    from framecast.serve.api import create_app as _create
    from framecast.serve.app import ServeConfig

    return _create(config or ServeConfig(), webapp=webapp)


__all__ = ["create_app"]
