"""The HTTP job API: `POST /v1/videos` queues a generation, the other routes watch, fetch, cancel.

Routes (OpenAPI at /docs): POST /v1/videos, GET /v1/videos/{id}, GET /v1/videos/{id}/content,
GET /v1/videos/{id}/events (server-sent events), DELETE /v1/videos/{id}, GET /v1/models,
GET /healthz, GET /metrics (Prometheus text). Bad requests are answered 422 with the sentence the
CLI prints; a full queue 429 with Retry-After; a missing or wrong API key 401.
"""

from __future__ import annotations

import json
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse

from framecast.serve.app import ServeConfig, Server
from framecast.serve.jobs import FINISHED, QueueFull
from framecast.serve.limits import add_limits
from framecast.serve.metrics import prometheus_text
from framecast.serve.request import FORMATS, VideoRequest


def error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": message}, status_code=status, headers=headers)


def _sentence(exc: RequestValidationError) -> str:
    """Pydantic's first complaint as one sentence naming the field."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body") or "the request body"
    return f"{where}: {first.get('msg', 'invalid')}".replace("Value error, ", "")


def create_app(config: ServeConfig, *, webapp: bool = False) -> FastAPI:
    """The FastAPI app; its workers start and stop with the app's lifespan."""
    server = Server(config)

    @asynccontextmanager
    async def lifespan(_app):
        server.start()
        try:
            yield
        finally:
            server.stop()

    app = FastAPI(title="framecast", summary="Video generation jobs over the framecast pipeline", lifespan=lifespan)
    app.state.server = server
    add_limits(app, config)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request, exc: RequestValidationError):
        server.rejected["invalid"] += 1
        return error(422, _sentence(exc))

    _job_routes(app, server)
    _service_routes(app, server)
    if webapp:
        from framecast.serve.webapp import mount

        app = mount(app, server)
    return app


def _job_routes(app: FastAPI, server: Server) -> None:
    @app.post("/v1/videos", status_code=202)
    def create_video(req: VideoRequest):
        """Queue a generation; -> {id, status: queued, queue_position}."""
        try:
            job, position = server.submit(req)
        except QueueFull as e:
            return error(429, str(e), {"Retry-After": str(server.retry_after_s())})
        except ValueError as e:
            return error(422, str(e))
        return JSONResponse({"id": job.id, "status": "queued", "queue_position": position}, status_code=202)  # as accepted

    @app.get("/v1/videos/{job_id}")
    def get_video(job_id: str):
        job = server.store.get(job_id)
        if job is None:
            return error(404, f"no job '{job_id}'")
        out = job.public()
        if job.status == "queued":
            out["queue_position"] = server.store.queue_position(job_id)
        return out

    @app.get("/v1/videos/{job_id}/content")
    def get_content(job_id: str):
        job = server.store.get(job_id)
        if job is None:
            return error(404, f"no job '{job_id}'")
        if job.status != "succeeded" or not job.result:
            return error(409, f"job '{job_id}' is {job.status}; its video exists once it has succeeded")
        fmt = job.request.get("format", "mp4")
        return FileResponse(job.result, media_type=FORMATS[fmt], filename=f"{job_id}.{fmt}")

    @app.delete("/v1/videos/{job_id}")
    def cancel_video(job_id: str):
        """Cancel a queued or running job (a running one stops at its next step)."""
        before = server.store.get(job_id)
        if before is None:
            return error(404, f"no job '{job_id}'")
        if before.status in FINISHED:
            return error(409, f"job '{job_id}' has already {before.status}; only queued or running jobs can be cancelled")
        return {"id": job_id, "status": server.cancel(job_id)}

    @app.get("/v1/videos/{job_id}/events")
    def events(job_id: str):
        """Server-sent events: `status`, `progress` (per step) and `chunk` (finished frames, a base64
        PNG strip, for hybrid models); the stream ends when the job has finished."""
        if server.store.get(job_id) is None:
            return error(404, f"no job '{job_id}'")
        return StreamingResponse(_event_stream(server, job_id), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _event_stream(server: Server, job_id: str, wait_s: float = 1.0):
    seen = 0
    job = server.store.get(job_id)
    yield f"event: status\ndata: {json.dumps({'status': job.status, 'progress': job.progress})}\n\n"
    while True:
        new = server.hub.since(job_id, seen, timeout=wait_s)
        seen += len(new)
        for kind, data in new:
            yield f"event: {kind}\ndata: {json.dumps(data)}\n\n"
        job = server.store.get(job_id)
        if job is None or (job.status in FINISHED and not server.hub.since(job_id, seen, timeout=0)):
            final = {"status": job.status if job else "gone", **({"error": job.error} if job and job.error else {})}
            yield f"event: done\ndata: {json.dumps(final)}\n\n"
            return
        if not new:
            yield ": waiting\n\n"  # keeps proxies from closing an idle stream


def _service_routes(app: FastAPI, server: Server) -> None:
    @app.get("/v1/models")
    def list_models():
        """The offered models with their cards; `loaded` says which are in memory."""
        return {"models": server.model_cards()}

    @app.get("/healthz")
    def healthz():
        return {"status": "ok", "workers": len(server.workers), "queue": server.store.counts()["queued"], "time": time.time()}

    @app.get("/metrics", response_class=PlainTextResponse)
    def metrics():
        return prometheus_text(server)
