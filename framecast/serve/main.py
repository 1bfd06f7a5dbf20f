"""`framecast serve`: check the options, build the app, run uvicorn."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import uvicorn  # here, so that `framecast serve` without the serve extra fails on import with its name

from framecast.serve.api import create_app
from framecast.serve.app import ServeConfig, default_threads

LOOPBACK_NAMES = ("localhost",)


def is_loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(host: str, api_key: str | None, queue_size: int, workers: int, threads: int | None = None) -> None:
    if not is_loopback(host) and not api_key:
        raise ValueError(f"--host {host} opens the server beyond this machine; give --api-key KEY (or set FRAMECAST_API_KEY)")
    if queue_size < 1:
        raise ValueError(f"--queue-size must be >= 1, got {queue_size}")
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    if threads is not None and threads < 1:
        raise ValueError(f"--threads must be >= 1, got {threads}")


def run_server(*, host: str, port: int, models: list[str] | None, queue_size: int, workers: int, state_dir: Path,
               api_key: str | None, retention_s: float, device: str = "auto", page: bool = True, threads: int | None = None) -> None:
    from framecast.pipeline import resolve_model

    check_options(host, api_key, queue_size, workers, threads)
    for name in models or ():
        resolve_model(name)  # an unknown name fails here, not at the first request
    config = ServeConfig(state_dir=Path(state_dir), models=models, queue_size=queue_size, workers=workers, api_key=api_key,
                         retention_s=retention_s, device=device, torch_threads=threads or default_threads(workers))
    app = create_app(config, webapp=page)
    print(f"framecast serve: http://{host}:{port}/ (API docs at /docs), state in {state_dir}", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
