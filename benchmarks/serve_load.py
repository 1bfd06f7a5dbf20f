"""Load test of `framecast serve` on loopback, bounded by a request count and a time limit.

Two phases against one server started with `--queue-size Q --workers 1`:
- steady: N requests from M client threads;
- kill: N more, with the server killed by SIGKILL when half of them have been sent, and started
  again on the same state folder.
Each client posts, and on 429 waits (the server's Retry-After with `--retry-after`, as a polite
client does; else 0.2 s, which keeps the queue full at any cost) and posts the same request again;
a refused connection while the server is down is retried after 0.2 s. Clients poll a job about
twice a second. Each request carries its own seed, so the job store shows which request
each job is. Checks: every 202 ends succeeded with its file, every refusal is a 429, no accepted job
is lost, and no job runs twice except one that was running when the server was killed.

It reports jobs a minute and latency (the store's created_at -> finished_at: queue wait and run)
against the CLI's seconds a clip measured in the same run: the pipeline call plus the file write
as `framecast generate` makes them (one loaded model), and a whole `framecast generate` process.

    python benchmarks/serve_load.py --requests 40 --threads 8 --model shapes-diffusion --frames 4 --steps 4
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROMPT = "a big red circle moves right and a small blue square moves left"


def call(method: str, url: str, body: dict | None = None, timeout: float = 30) -> tuple[int, dict, dict]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read() or b"{}"), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}"), dict(e.headers)


class ServerProcess:
    def __init__(self, args, state_dir: Path, port: int):
        self.cmd = [sys.executable, "-m", "framecast.cli", "serve", "--port", str(port), "--state-dir", str(state_dir),
                    "--queue-size", str(args.queue_size), "--workers", "1", "--threads", str(args.torch_threads),
                    "--models", args.model, "--no-page"]
        self.url, self.proc, self.log = f"http://127.0.0.1:{port}", None, state_dir.parent / "server.log"

    def start(self, timeout: float = 120) -> float:
        t = time.perf_counter()
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(self.cmd, cwd=ROOT, env=env, stdout=open(self.log, "a"), stderr=subprocess.STDOUT)
        while time.perf_counter() - t < timeout:
            try:
                if call("GET", self.url + "/healthz", timeout=2)[0] == 200:
                    return time.perf_counter() - t
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the server did not answer /healthz in {timeout}s; see {self.log}")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def clip_times(args, clips: int) -> list[float]:
    """Seconds a clip the CLI's way: framecast.load once, then pipe(...) and export_to_video per
    clip (what `framecast generate` times)."""
    import torch

    import framecast
    from framecast.video import export_to_video

    torch.set_num_threads(args.torch_threads)
    pipe = framecast.load(args.model)
    kw = dict(num_frames=args.frames, num_inference_steps=args.steps)
    with tempfile.TemporaryDirectory() as tmp:
        pipe(PROMPT, generator=torch.Generator().manual_seed(0), **kw)  # warm-up
        times = []
        for i in range(clips):
            t = time.perf_counter()
            export_to_video(pipe(PROMPT, generator=torch.Generator().manual_seed(i), **kw), Path(tmp) / f"{i}.mp4")
            times.append(time.perf_counter() - t)
    return times


def cli_process_seconds(args) -> float:
    """One whole `framecast generate` process: start-up, model load, the clip, the file."""
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "framecast.cli", "generate", PROMPT, "--model", args.model, "--frames", str(args.frames),
                        "--steps", str(args.steps), "--output", str(Path(tmp) / "cli.mp4")], cwd=ROOT, check=True,
                       env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(args.torch_threads)}, capture_output=True)
        return time.perf_counter() - t


class Clients:
    """M threads sending requests first..first+n-1 (the seed names the request)."""

    def __init__(self, server: ServerProcess, args, first: int, n: int, on_sent=None):
        self.server, self.args, self.on_sent = server, args, on_sent
        self.todo = list(range(first, first + n))
        self.lock = threading.Lock()
        self.accepted: dict[int, str] = {}  # seed -> job id
        self.codes: dict[int, int] = {}
        self.down_retries = 0

    def _next(self) -> int | None:
        with self.lock:
            return self.todo.pop(0) if self.todo else None

    def _send(self, seed: int, deadline: float) -> None:
        body = {"prompt": PROMPT, "model": self.args.model, "num_frames": self.args.frames, "num_inference_steps": self.args.steps,
                "seed": seed, "format": "mp4"}
        while time.time() < deadline:
            try:
                code, reply, headers = call("POST", self.server.url + "/v1/videos", body)
            except (OSError, http.client.HTTPException):  # the server is down (killed) or restarting
                with self.lock:
                    self.down_retries += 1
                time.sleep(0.2)
                continue
            with self.lock:
                self.codes[code] = self.codes.get(code, 0) + 1
            if code == 202:
                with self.lock:
                    self.accepted[seed] = reply["id"]
                return
            if code != 429:
                raise RuntimeError(f"request {seed}: unexpected {code} {reply}")
            time.sleep(retry_after(headers, self.args.retry_after))

    def run(self, deadline: float) -> None:
        def loop():
            while (seed := self._next()) is not None and time.time() < deadline:
                self._send(seed, deadline)
                if self.on_sent:
                    self.on_sent(len(self.accepted))

        threads = [threading.Thread(target=loop) for _ in range(self.args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def retry_after(headers: dict, honour: bool) -> float:
    """Seconds a client waits after a 429: the server's Retry-After, as a polite client does
    (`--retry-after`), else 0.2 s (a client that keeps the queue full at any cost)."""
    if not honour:
        return 0.2
    try:
        return float(headers.get("Retry-After") or headers.get("retry-after") or 0.2)
    except ValueError:
        return 0.2


def wait_all_finished(url: str, ids: list[str], deadline: float) -> None:
    pending = set(ids)
    while pending and time.time() < deadline:
        for job_id in list(pending):
            try:
                code, job, _ = call("GET", f"{url}/v1/videos/{job_id}")
            except (OSError, http.client.HTTPException):
                time.sleep(0.2)
                continue
            if code == 200 and job["status"] in ("succeeded", "failed", "cancelled"):
                pending.discard(job_id)
        time.sleep(0.5)  # a client polls a job about twice a second


def store_rows(state_dir: Path) -> list[dict]:
    db = sqlite3.connect(str(state_dir / "jobs.sqlite"))
    cols = ["id", "status", "request", "runs", "created_at", "started_at", "finished_at", "result"]
    rows = [dict(zip(cols, r)) for r in db.execute(f"SELECT {', '.join(cols)} FROM jobs ORDER BY seq")]
    db.close()
    for r in rows:
        r["seed"] = json.loads(r.pop("request"))["seed"]
    return rows


def pct(values: list[float], q: float) -> float:
    v = sorted(values)
    return v[min(len(v) - 1, round(q * (len(v) - 1)))] if v else float("nan")


def phase(server: ServerProcess, args, first: int, kill: bool, deadline: float) -> dict:
    killed, once = {"at": None, "restart_s": None}, threading.Lock()

    def maybe_kill(accepted: int):
        with once:
            if killed["at"] is None and accepted >= args.requests // 2:
                killed["at"] = time.time()
                server.kill()
                killed["restart_s"] = server.start()

    clients = Clients(server, args, first, args.requests, on_sent=maybe_kill if kill else None)
    t0 = time.time()
    clients.run(deadline)
    wait_all_finished(server.url, list(clients.accepted.values()), deadline)
    state_dir = Path(server.cmd[server.cmd.index("--state-dir") + 1])
    rows = [r for r in store_rows(state_dir) if first <= r["seed"] < first + args.requests]
    return summarise(rows, clients, t0, killed)


def summarise(rows: list[dict], clients: Clients, t0: float, killed: dict) -> dict:
    by_seed: dict[int, list[dict]] = {}
    for r in rows:
        by_seed.setdefault(r["seed"], []).append(r)
    acked = set(clients.accepted.values())
    ok = [r for r in rows if r["status"] == "succeeded" and r["result"] and Path(r["result"]).is_file()]
    lost = [r["id"] for r in rows if r["id"] in acked and r not in ok]
    unacked = [r["id"] for r in rows if r["id"] not in acked]  # accepted but the reply was lost in the kill
    rerun = [r["id"] for r in rows if r["runs"] > 1]
    finished = [r["finished_at"] for r in ok]
    latency = [r["finished_at"] - r["created_at"] for r in ok]
    run_s = [r["finished_at"] - r["started_at"] for r in ok]
    wall = (max(finished) - t0) if finished else float("nan")
    return {
        "requests": len(clients.todo) + len(clients.accepted),
        "accepted_202": len(acked), "refused_429": clients.codes.get(429, 0),
        "other_codes": {str(k): v for k, v in clients.codes.items() if k not in (202, 429)},
        "refused_connections_while_down": clients.down_retries,
        "jobs_in_store": len(rows), "succeeded": len(ok), "lost": lost, "accepted_without_reply": unacked,
        "run_more_than_once": rerun, "seeds_with_two_jobs": [s for s, rs in by_seed.items() if len(rs) > 1],
        "wall_s": wall, "jobs_per_minute": 60 * len(ok) / wall if ok else 0.0,
        "latency_p50_s": pct(latency, 0.5), "latency_p95_s": pct(latency, 0.95),
        "run_s_median": statistics.median(run_s) if run_s else float("nan"),
        "killed": killed["at"] is not None, "restart_s": killed["restart_s"],
    }


def markdown(result: dict) -> str:
    a, base = result["args"], result["cli"]
    lines = [
        "# framecast serve: load test", "",
        f"`python benchmarks/serve_load.py {a['argv']}`", "",
        f"{a['requests']} requests a phase from {a['threads']} client threads against `--queue-size {a['queue_size']} --workers 1 "
        f"--threads {a['torch_threads']}`, model {a['model']}, {a['frames']} frames, {a['steps']} steps, on {result['machine']}.", "",
        f"CLI baseline: {base['seconds_per_clip']:.3f} s a clip (pipeline call and mp4 write, model loaded; median of {base['clips']}: "
        f"{base['before']:.3f} before the server's phases, {base['after']:.3f} after), {60 / base['seconds_per_clip']:.0f} clips a minute; "
        f"a whole `framecast generate` process {base['cli_process_seconds']:.1f} s. "
        f"Load average (1 min) at start, between phases, at the end: {', '.join(f'{x:.1f}' for x in result['load_average'])}.", "",
        "| phase | 202 | 429 | succeeded | lost | run twice | reply lost in kill | jobs / min | p50 latency s | p95 latency s | "
        "s a job (run) | overhead a job | jobs / min against CLI clips / min |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, p in result["phases"].items():
        over = p["run_s_median"] / base["seconds_per_clip"] - 1
        lines.append(f"| {name} | {p['accepted_202']} | {p['refused_429']} | {p['succeeded']} | {len(p['lost'])} | "
                     f"{len(p['run_more_than_once'])} | {len(p['accepted_without_reply'])} | {p['jobs_per_minute']:.0f} | "
                     f"{p['latency_p50_s']:.2f} | {p['latency_p95_s']:.2f} | {p['run_s_median']:.3f} | {over:+.0%} | "
                     f"{p['jobs_per_minute'] * base['seconds_per_clip'] / 60:.2f} |")
    k = result["phases"].get("kill")
    if k:
        lines += ["", f"Kill phase: SIGKILL after half the requests were accepted, restart answered /healthz in {k['restart_s']:.1f} s; "
                  f"{k['refused_connections_while_down']} posts found the server down and were sent again. "
                  "A job that was running at the kill runs again from the start (`run twice`); a job accepted just before the kill "
                  "whose reply was lost is in the store and runs like the others (`reply lost in kill`; its client sent the request again)."]
    lines += ["", "Latency: the store's created_at to finished_at (queue wait and run). Overhead a job: the server's start-to-finish "
              "seconds a job (load of the job, step callbacks with a status check each, result file written and renamed) against the "
              "CLI baseline."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--requests", type=int, default=40, help="requests a phase")
    ap.add_argument("--threads", type=int, default=8, help="client threads")
    ap.add_argument("--queue-size", type=int, default=8)
    ap.add_argument("--model", default="shapes-diffusion")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--torch-threads", type=int, default=1, help="PyTorch threads for the server's worker and the CLI baseline")
    ap.add_argument("--baseline-clips", type=int, default=8, help="CLI clips timed before and after the server's")
    ap.add_argument("--time-limit", type=float, default=600, help="seconds for the whole run")
    ap.add_argument("--retry-after", action="store_true", help="clients wait the server's Retry-After after a 429 (else 0.2 s)")
    ap.add_argument("--output", type=Path, default=ROOT / "benchmarks" / "results" / "serve_load")
    args = ap.parse_args(argv)
    deadline = time.time() + args.time_limit
    shown = {k: (os.path.relpath(v, ROOT) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    result = {"args": {**shown,
                       "argv": " ".join(argv if argv is not None else sys.argv[1:])},
              "machine": f"{os.cpu_count()} CPU cores ({socket.gethostname()})", "phases": {}, "load_average": [os.getloadavg()[0]]}
    before = clip_times(args, args.baseline_clips)  # the CLI's clips before and after the server's, as the machine's load varies
    with tempfile.TemporaryDirectory() as tmp:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = ServerProcess(args, Path(tmp) / "state", port)
        result["server_start_s"] = server.start()
        try:
            result["phases"]["steady"] = phase(server, args, 0, kill=False, deadline=deadline)
            result["load_average"].append(os.getloadavg()[0])
            result["phases"]["kill"] = phase(server, args, args.requests, kill=True, deadline=deadline)
        finally:
            server.stop()
    after = clip_times(args, args.baseline_clips)
    result["load_average"].append(os.getloadavg()[0])
    result["cli"] = {"seconds_per_clip": statistics.median(before + after), "before": statistics.median(before),
                     "after": statistics.median(after), "clips": len(before + after), "cli_process_seconds": cli_process_seconds(args)}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(result, indent=1))
    args.output.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    bad = {n: p for n, p in result["phases"].items() if p["lost"] or p["succeeded"] < p["accepted_202"] or p["other_codes"]
           or len(p["run_more_than_once"]) > 1}
    if bad:
        sys.exit(f"load test failed: {json.dumps(bad)[:2000]}")
    return result


if __name__ == "__main__":
    main()
