"""Request limits on every route: the API key (all but /healthz) and the body size."""

from __future__ import annotations

import hmac

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

OPEN_PATHS = ("/healthz",)


def given_key(request: Request) -> str | None:
    """The key from `Authorization: Bearer KEY`, `X-API-Key`, an `api_key` query parameter or cookie
    (the last two let a browser open the page)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-api-key") or request.query_params.get("api_key") or request.cookies.get("framecast_api_key")


def add_limits(app: FastAPI, config) -> None:
    @app.middleware("http")
    async def limits(request: Request, call_next):
        if config.api_key and request.url.path not in OPEN_PATHS:
            key = given_key(request)
            if key is None or not hmac.compare_digest(key.encode(), config.api_key.encode()):
                return JSONResponse({"detail": "missing or wrong API key; send it as 'Authorization: Bearer KEY'"}, status_code=401,
                                    headers={"WWW-Authenticate": "Bearer"})
        length = request.headers.get("content-length")
        if length is not None and int(length) > config.max_body_bytes:
            return JSONResponse({"detail": f"the request body is {int(length)} bytes; this server takes at most {config.max_body_bytes}"},
                                status_code=413)
        if length is None and request.method in ("POST", "PUT", "PATCH") and request.url.path.startswith("/v1/"):
            return JSONResponse({"detail": "send the body with a Content-Length header"}, status_code=411)
        response = await call_next(request)
        if config.api_key and request.query_params.get("api_key"):
            response.set_cookie("framecast_api_key", config.api_key, httponly=True, samesite="strict")
        return response
