"""The HTTP job API through FastAPI's test client, on the tiny models: every route and status,
validation, the queue limit, cancel, auth, limits and restart recovery."""

import base64
import io
import json
import time

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from framecast.serve.api import create_app  # noqa: E402
from framecast.serve.app import ServeConfig  # noqa: E402
from framecast.serve.jobs import JobStore  # noqa: E402

PROMPT = "a big red circle moves right"


def client(tmp_path, models, **kw) -> TestClient:
    return TestClient(create_app(ServeConfig(state_dir=tmp_path / "state", models=[str(m) for m in models], **kw)))


def body(model, **kw) -> dict:
    return {"prompt": PROMPT, "model": str(model), "num_frames": 4, "num_inference_steps": 2, **kw}


def wait(c: TestClient, job_id: str, until=("succeeded", "failed", "cancelled"), timeout: float = 60) -> dict:
    end = time.time() + timeout
    while time.time() < end:
        job = c.get(f"/v1/videos/{job_id}").json()
        if job["status"] in until:
            return job
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} still {job['status']} after {timeout}s")


@pytest.mark.parametrize("fmt,media", [("mp4", "video/mp4"), ("gif", "image/gif"), ("npy", "application/octet-stream")])
def test_post_poll_download(tmp_path, tiny_model_dir, fmt, media):
    with client(tmp_path, [tiny_model_dir]) as c:
        r = c.post("/v1/videos", json=body(tiny_model_dir, format=fmt, seed=3))
        assert r.status_code == 202
        assert r.json()["status"] == "queued" and r.json()["queue_position"] == 0
        job = wait(c, r.json()["id"])
        assert job["status"] == "succeeded" and job["progress"] == 1.0 and job["frames_done"] == 4
        assert job["started_at"] >= job["created_at"] and job["finished_at"] >= job["started_at"]
        assert job["request"]["seed"] == 3
        content = c.get(f"/v1/videos/{job['id']}/content")
        assert content.status_code == 200 and content.headers["content-type"] == media
        if fmt == "npy":
            frames = np.load(io.BytesIO(content.content))
            assert frames.shape[0] == 4 and frames.dtype == np.uint8


def test_validation_gives_the_pipelines_sentence(tmp_path, tiny_model_dir, tiny_hybrid_dir):
    with client(tmp_path, [tiny_model_dir, tiny_hybrid_dir], workers=0) as c:
        cases = [
            (body(tiny_model_dir, num_frames=0), "num_frames must be > 0, got 0"),
            (body(tiny_model_dir, sampler="nope"), "unknown sampler 'nope'"),
            (body(tiny_model_dir, sigmas=[0.5, 0.9]), "sigmas must fall"),
            (body(tiny_model_dir, decode="raster"), "decode is for autoregressive models"),
            (body(tiny_hybrid_dir, decode="set"), "decode is for autoregressive models"),
            (body(tiny_hybrid_dir, schedule="zigzag"), "zigzag"),
            (body("shapes-ar"), "is not served here"),
            (body(tiny_model_dir, prompt="x" * 501), "prompt: String should have at most 500 characters"),
            (body(tiny_model_dir, colour="red"), "colour: Extra inputs are not permitted"),
            (body(tiny_model_dir, image=base64.b64encode(b"not a picture").decode()), "the image is not a readable PNG or JPEG"),
            (body(tiny_model_dir, image="%%%"), "not valid base64"),
        ]
        for request, sentence in cases:
            r = c.post("/v1/videos", json=request)
            assert r.status_code == 422, (request, r.text)
            assert sentence in r.json()["detail"], r.json()
            assert "\n" not in r.json()["detail"] and "Traceback" not in r.json()["detail"]
        assert c.get("/metrics").text.count('reason="invalid"} 11') == 1
        assert c.get("/v1/videos").status_code in (404, 405)


def test_image_to_video_takes_a_picture(tmp_path, tiny_model_dir):
    from PIL import Image

    from framecast.pipeline import load

    side = load(tiny_model_dir, device="cpu").config.size
    buf = io.BytesIO()
    Image.new("RGB", (side, side), (200, 30, 30)).save(buf, format="PNG")
    with client(tmp_path, [tiny_model_dir]) as c:
        r = c.post("/v1/videos", json=body(tiny_model_dir, image=base64.b64encode(buf.getvalue()).decode(), format="npy"))
        assert r.status_code == 202, r.text
        job = wait(c, r.json()["id"])
        assert job["status"] == "succeeded"
        assert job["request"]["image"].startswith("<") and "base64" in job["request"]["image"]
        frames = np.load(io.BytesIO(c.get(f"/v1/videos/{job['id']}/content").content))
        assert np.abs(frames[0].astype(int) - [200, 30, 30]).max() <= 2
        wrong = io.BytesIO()
        Image.new("RGB", (side + 1, side), (0, 0, 0)).save(wrong, format="PNG")
        r = c.post("/v1/videos", json=body(tiny_model_dir, image=base64.b64encode(wrong.getvalue()).decode()))
        assert r.status_code == 202, r.text  # another size is resized to the model's, as the pipeline does
        r = c.post("/v1/videos", json=body(tiny_model_dir, image=base64.b64encode(b"not an image").decode()))
        assert r.status_code == 422


def test_queue_full_is_429_with_retry_after(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir], workers=0, queue_size=2) as c:
        positions = [c.post("/v1/videos", json=body(tiny_model_dir)).json()["queue_position"] for _ in range(2)]
        assert positions == [0, 1]
        r = c.post("/v1/videos", json=body(tiny_model_dir))
        assert r.status_code == 429 and int(r.headers["Retry-After"]) >= 1 and "queue is full" in r.json()["detail"]
        assert 'framecast_queue_length 2' in c.get("/metrics").text


def test_cancel_queued_then_finished_is_409(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir], workers=0) as c:
        first = c.post("/v1/videos", json=body(tiny_model_dir)).json()["id"]
        second = c.post("/v1/videos", json=body(tiny_model_dir)).json()["id"]
        assert c.get(f"/v1/videos/{second}").json()["queue_position"] == 1
        r = c.delete(f"/v1/videos/{first}")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert c.get(f"/v1/videos/{second}").json()["queue_position"] == 0
        assert c.delete(f"/v1/videos/{first}").status_code == 409
        assert c.get(f"/v1/videos/{first}/content").status_code == 409
        assert c.get(f"/v1/videos/{second}/content").status_code == 409  # queued: no file yet


def test_cancel_running_stops_at_the_next_step(tmp_path, tiny_hybrid_dir):
    with client(tmp_path, [tiny_hybrid_dir]) as c:
        long = c.post("/v1/videos", json=body(tiny_hybrid_dir, num_frames=8, num_inference_steps=200)).json()["id"]
        end = time.time() + 60
        while c.get(f"/v1/videos/{long}").json()["progress"] == 0 and time.time() < end:
            time.sleep(0.01)
        assert c.get(f"/v1/videos/{long}").json()["status"] == "running"
        assert c.delete(f"/v1/videos/{long}").json()["status"] == "cancelled"
        short = c.post("/v1/videos", json=body(tiny_hybrid_dir)).json()["id"]
        job = wait(c, short, timeout=30)  # the worker is free again
        assert job["status"] == "succeeded"
        cancelled = c.get(f"/v1/videos/{long}").json()
        assert cancelled["status"] == "cancelled" and cancelled["progress"] < 0.5
        assert not list((tmp_path / "state" / "results").glob(f"{long}*"))


def test_failed_job_keeps_the_sentence(tmp_path, tiny_model_dir):
    c = client(tmp_path, [tiny_model_dir])
    store = c.app.state.server.store
    job, _ = store.add(body(tiny_model_dir, sampler="nope", format="mp4", seed=0))  # past the API's check
    with c:
        done = wait(c, job.id)
    assert done["status"] == "failed" and done["error"].startswith("unknown sampler 'nope'")


def events_of(c: TestClient, job_id: str) -> list[tuple[str, dict]]:
    """A job's server-sent events, (kind, data) each, read to the end of the stream."""
    events, kind = [], None
    with c.stream("GET", f"/v1/videos/{job_id}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        for line in stream.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                events.append((kind, json.loads(line[6:])))
    return events


def test_events_stream_progress_and_chunks(tmp_path, tiny_hybrid_dir):
    with client(tmp_path, [tiny_hybrid_dir]) as c:
        events = events_of(c, c.post("/v1/videos", json=body(tiny_hybrid_dir, schedule="autoregressive")).json()["id"])
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and events[-1][1]["status"] == "succeeded"
    steps = [d for k, d in events if k == "progress"]
    assert steps and steps[-1]["progress"] == 1.0 and [d["step"] for d in steps] == list(range(1, len(steps) + 1))
    chunks = [d for k, d in events if k == "chunk"]
    spans = [d["frames"] for d in chunks]
    assert len(spans) > 1 and spans[0][0] == 0 and spans[-1][1] == 4  # frames as they are made, in order
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert base64.b64decode(chunks[0]["png"])[:4] == b"\x89PNG"
    assert kinds.index("chunk") < max(i for i, k in enumerate(kinds) if k == "progress")  # the first chunk comes before the last step


def test_unknown_job_is_404(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir], workers=0) as c:
        for method, path in [("get", ""), ("get", "/content"), ("get", "/events"), ("delete", "")]:
            assert getattr(c, method)(f"/v1/videos/nope{path}").status_code == 404


def test_models_healthz_metrics(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir]) as c:
        models = c.get("/v1/models").json()["models"]
        assert [m["family"] for m in models] == ["diffusion"] and models[0]["params"] > 0
        assert c.get("/healthz").json()["status"] == "ok"
        wait(c, c.post("/v1/videos", json=body(tiny_model_dir)).json()["id"])
        text = c.get("/metrics").text
        assert 'framecast_jobs{status="succeeded"} 1' in text and "framecast_job_seconds_count 1" in text
        assert c.get("/v1/models").json()["models"][0]["loaded"] is True
        assert c.get("/openapi.json").json()["paths"]["/v1/videos"]["post"]


def test_api_key_on_every_route_but_healthz(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir], workers=0, api_key="s3cret") as c:
        assert c.get("/healthz").status_code == 200
        for path in ("/v1/models", "/metrics", "/v1/videos/x", "/docs"):
            assert c.get(path).status_code == 401
        assert c.post("/v1/videos", json=body(tiny_model_dir)).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert c.post("/v1/videos", json=body(tiny_model_dir), headers={"X-API-Key": "s3cret"}).status_code == 202


def test_body_size_limit(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir], workers=0, max_body_bytes=2000) as c:
        r = c.post("/v1/videos", json=body(tiny_model_dir, image="A" * 4000))
        assert r.status_code == 413 and "at most 2000" in r.json()["detail"]


def test_restart_recovery_runs_accepted_jobs(tmp_path, tiny_model_dir):
    """A server killed mid-run: the store reopened finds the running job queued again, and a queued
    one still queued; both run; a finished one stays downloadable."""
    state = tmp_path / "state"
    with client(tmp_path, [tiny_model_dir]) as c:
        done = wait(c, c.post("/v1/videos", json=body(tiny_model_dir)).json()["id"])
    crashed = JobStore(state)
    running, _ = crashed.add(body(tiny_model_dir, format="mp4", seed=1, fps=8))
    queued, _ = crashed.add(body(tiny_model_dir, format="mp4", seed=2, fps=8))
    assert crashed.claim().id == running.id  # a worker took it; then the process died (no finish)
    crashed.set_progress(running.id, 0.5, 0)
    reopened = JobStore(state)  # as a restarted server opens it
    assert reopened.get(running.id).status == "queued" and reopened.get(running.id).progress == 0
    assert [reopened.queue_position(running.id), reopened.queue_position(queued.id)] == [0, 1]
    with client(tmp_path, [tiny_model_dir]) as c:
        for job_id in (running.id, queued.id):
            assert wait(c, job_id)["status"] == "succeeded"
        assert c.get(f"/v1/videos/{done['id']}/content").status_code == 200
    runs = {j: JobStore(state).get(j).runs for j in (running.id, queued.id, done["id"])}
    assert runs == {running.id: 2, queued.id: 1, done["id"]: 1}


def test_retention_removes_old_results(tmp_path, tiny_model_dir):
    with client(tmp_path, [tiny_model_dir]) as c:
        job = wait(c, c.post("/v1/videos", json=body(tiny_model_dir)).json()["id"])
        store = c.app.state.server.store
        result = store.get(job["id"]).result
        assert store.purge(older_than_s=3600) == 0
        assert store.purge(older_than_s=-1) == 1
        assert c.get(f"/v1/videos/{job['id']}").status_code == 404
    assert not (tmp_path / "state" / "results" / result).exists()


def test_open_host_needs_an_api_key(monkeypatch):
    from typer.testing import CliRunner

    from framecast.cli import app

    monkeypatch.delenv("FRAMECAST_API_KEY", raising=False)
    out = CliRunner().invoke(app, ["serve", "--host", "0.0.0.0"])
    assert out.exit_code == 2 and "--api-key" in out.output
    out = CliRunner().invoke(app, ["serve", "--queue-size", "0"])
    assert out.exit_code == 2 and "--queue-size must be >= 1" in out.output


def test_library_and_cli_work_without_the_serve_extra():
    import subprocess
    import sys

    code = ("import sys; sys.modules['fastapi'] = sys.modules['uvicorn'] = sys.modules['gradio'] = None\n"
            "import framecast, framecast.cli\n"
            "from typer.testing import CliRunner\n"
            "out = CliRunner().invoke(framecast.cli.app, ['serve'])\n"
            "print(out.exit_code, out.output)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("2 ") and "pip install 'framecast[serve]'" in out.stdout


def test_continuation_takes_a_clip(tmp_path, tiny_hybrid_dir):
    from PIL import Image

    from framecast.pipeline import load

    side = load(tiny_hybrid_dir, device="cpu").config.size
    frames = [Image.new("RGB", (side, side), (0, 220, 0)), Image.new("RGB", (side, side), (0, 220, 40))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:], duration=125)
    with client(tmp_path, [tiny_hybrid_dir]) as c:
        video = base64.b64encode(buf.getvalue()).decode()
        r = c.post("/v1/videos", json=body(tiny_hybrid_dir, video=video, context_frames=2, format="npy"))
        assert r.status_code == 202, r.text
        assert wait(c, r.json()["id"])["status"] == "succeeded"
        frames = np.load(io.BytesIO(c.get(f"/v1/videos/{r.json()['id']}/content").content))
        assert frames.shape[0] == 4 and abs(int(frames[1, ..., 1].mean()) - 220) <= 3
        r = c.post("/v1/videos", json=body(tiny_hybrid_dir, video=base64.b64encode(b"GIF89a broken").decode()))
        assert r.status_code == 422 and "not a readable" in r.json()["detail"]


def test_page_is_mounted_at_root(tmp_path, tiny_model_dir, tiny_hybrid_dir):
    pytest.importorskip("gradio")
    app = create_app(ServeConfig(state_dir=tmp_path / "state", models=[str(tiny_model_dir), str(tiny_hybrid_dir)]), webapp=True)
    with TestClient(app) as c:
        page = c.get("/")
        assert page.status_code == 200 and "<html" in page.text
        config = c.get("/config").json()
        labels = {comp.get("props", {}).get("label") for comp in config["components"]}
        assert {"prompt", "model", "clip", "lens"} <= labels
        assert any((label or "").startswith("prompt switches") for label in labels)
        assert c.get("/v1/models").status_code == 200  # the API beside the page


def test_the_forms_prompt_switches_become_the_requests_prompt_at(tmp_path, tiny_hybrid_dir):
    """One switch a line, FRAME: PROMPT, as `--prompt-at`; a malformed line is named with the fix."""
    from framecast.serve.webjobs import DEFAULT, form_request

    form = ["a big red circle moves right", str(tiny_hybrid_dir), DEFAULT, 2, None, 0, 8, DEFAULT, DEFAULT, None, None, None]
    req = form_request(*form, "4: a big red circle moves up\n\n 6 :a small blue square moves left ")
    assert [(s.frame, s.prompt) for s in req.prompt_at] == [(4, "a big red circle moves up"), (6, "a small blue square moves left")]
    assert form_request(*form, "  ").prompt_at is None and form_request(*form).prompt_at is None
    for bad in ("a big red circle moves up", "four: a big red circle", "4:"):
        with pytest.raises(ValueError, match="FRAME: PROMPT"):
            form_request(*form, bad)
    server = create_app(ServeConfig(state_dir=tmp_path / "state", models=[str(tiny_hybrid_dir)])).state.server
    with pytest.raises(ValueError, match="99"):  # the pipeline's check of the frame, before the job is queued
        server.submit(form_request(*form, "99: a big red circle moves up"))


def test_the_forms_noise_levels_become_the_requests_sigmas(tmp_path, tiny_hybrid_dir):
    """Noise levels set the steps (the steps box, filled with the model's default, is left out);
    bad ones are a sentence, before or at the submit; the matrix picture draws them."""
    from framecast.serve.webjobs import DEFAULT, form_request, matrix_picture

    form = ["a big red circle moves right", str(tiny_hybrid_dir), DEFAULT, 2, None, 0, 8, DEFAULT, DEFAULT, None, None, None, None]
    req = form_request(*form, "1, 0.6 0.3")
    assert req.sigmas == [1.0, 0.6, 0.3] and req.num_inference_steps is None
    assert form_request(*form, " ").sigmas is None and form_request(*form).num_inference_steps == 2
    with pytest.raises(ValueError, match="noise levels: give numbers"):
        form_request(*form, "1, high")
    server = create_app(ServeConfig(state_dir=tmp_path / "state", models=[str(tiny_hybrid_dir)])).state.server
    with pytest.raises(ValueError, match="sigmas must fall"):
        server.submit(form_request(*form, "0.3, 0.6"))
    two, three = (matrix_picture(server, str(tiny_hybrid_dir), DEFAULT, 8, 2, lv) for lv in ("1, 0.5", "1, 0.6, 0.3"))
    assert two is not None and three is not None and three.shape[0] > two.shape[0]  # more rows: more steps


def test_token_model_jobs_report_progress_and_cancel(tmp_path, tiny_ar_dir):
    """A token model reports a progress step every decoding pass, so its job moves between 0 and 1
    and a cancel stops it at the next pass (a 64-frame clip: seconds of passes, so the cancel lands)."""
    with client(tmp_path, [tiny_ar_dir]) as c:
        job_id = c.post("/v1/videos", json=body(tiny_ar_dir, num_inference_steps=None)).json()["id"]
        with c.stream("GET", f"/v1/videos/{job_id}/events") as stream:
            steps = [json.loads(line[6:]) for line in stream.iter_lines() if line.startswith("data: ") and '"step"' in line]
        assert len(steps) == steps[0]["steps"] == 4 * 16  # raster order: a pass a token, 4 frames of 4x4 tokens
        assert 0 < steps[0]["progress"] < 1 and steps[-1]["progress"] == 1.0
        long = c.post("/v1/videos", json=body(tiny_ar_dir, num_frames=64, num_inference_steps=None)).json()["id"]  # 1024 passes
        end = time.time() + 60
        while c.get(f"/v1/videos/{long}").json()["progress"] == 0 and time.time() < end:
            time.sleep(0.01)
        assert c.delete(f"/v1/videos/{long}").json()["status"] == "cancelled"
        job = wait(c, c.post("/v1/videos", json=body(tiny_ar_dir, num_frames=1)).json()["id"], timeout=30)  # the worker is free again
        assert job["status"] == "succeeded"
        cancelled = c.get(f"/v1/videos/{long}").json()
        assert cancelled["status"] == "cancelled" and 0 < cancelled["progress"] < 1


def test_token_model_jobs_send_each_frame_as_a_chunk(tmp_path, tiny_ar_dir):
    """A raster-order job publishes every frame once its last token is drawn, before the last pass."""
    with client(tmp_path, [tiny_ar_dir]) as c:
        job_id = c.post("/v1/videos", json=body(tiny_ar_dir, num_frames=3, num_inference_steps=None)).json()["id"]
        events = events_of(c, job_id)
        assert c.get(f"/v1/videos/{job_id}").json()["frames_done"] == 3
    kinds = [k for k, _ in events]
    assert kinds[-1] == "done" and events[-1][1]["status"] == "succeeded"
    assert [d["frames"] for k, d in events if k == "chunk"] == [[0, 1], [1, 2], [2, 3]]
    assert kinds.index("chunk") < max(i for i, k in enumerate(kinds) if k == "progress")


def test_step_cache_through_the_api(tmp_path, tiny_hybrid_dir, tiny_ar_dir):
    """`step_cache` reaches the pipeline; a threshold it refuses, or a token model, gets its sentence
    before the job is queued."""
    with client(tmp_path, [tiny_hybrid_dir, tiny_ar_dir]) as c:
        r = c.post("/v1/videos", json=body(tiny_hybrid_dir, step_cache=0.5, format="npy"))
        assert r.status_code == 202, r.text
        assert wait(c, r.json()["id"])["status"] == "succeeded"
        for bad in (body(tiny_hybrid_dir, step_cache=-1), body(tiny_ar_dir, step_cache=0.5, num_inference_steps=None)):
            r = c.post("/v1/videos", json=bad)
            assert r.status_code == 422 and "step" in r.json()["detail"], r.text


def test_first_steps_through_the_api(tmp_path, tiny_hybrid_dir):
    """`first_steps` reaches the pipeline, which refuses it with the full schedule before the job is queued."""
    with client(tmp_path, [tiny_hybrid_dir]) as c:
        r = c.post("/v1/videos", json=body(tiny_hybrid_dir, first_steps=5, format="npy"))
        assert r.status_code == 202, r.text
        assert wait(c, r.json()["id"])["status"] == "succeeded"
        r = c.post("/v1/videos", json=body(tiny_hybrid_dir, first_steps=5, schedule="full"))
        assert r.status_code == 422 and "first_steps" in r.json()["detail"], r.text
