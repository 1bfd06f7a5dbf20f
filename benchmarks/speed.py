"""The speed ledger: one command, one table of how fast framecast runs on this machine.

    python benchmarks/speed.py                 # a few minutes on a quiet 2-core CPU
    python benchmarks/speed.py --models runs/my-model   # a further model folder or name

It measures, in this order:
- the CPU's matmul peak (best of 3 large square matmuls) in fp32 and bf16;
- per model (the bundled shapes-diffusion, shapes-hybrid, shapes-hybrid-fast, shapes-ar and any --models), in each
  precision (`auto` and fp32; the same on a CPU without bf16 kernels): seconds per clip, frames
  per second and time to the first frame when streaming (hybrid and token models), peak resident
  memory, and the backbone's FLOPs over one generation (torch.utils.flop_counter) divided by the
  seconds per clip, against the peak;
- framecast's denoising step against diffusers' WanTransformer3DModel built with shapes-diffusion's
  width, depth, heads, patch sizes and token count, same precision, same process, timed in turns
  (median), with each one's time split into self-attention, cross-attention, MLP, modulation and
  norms, and the rest (torch.profiler ranges around the modules);
- one generation alone and beside a busy process (one thread of matmuls), with 1 thread, every
  core, and the count framecast.threads chooses.

Writes benchmarks/results/speed.json and .md and the "Speed ledger" section of docs/performance.md.
"""

from __future__ import annotations

import argparse
import re
import shlex
import sys
from pathlib import Path

import torch
from report import describe, machine, write_report
from speed_parts import in_own_process, measure_model, peaks, step_against_wan, thread_rows

from framecast.precision import has_fast_bf16, resolve_precision
from framecast.threads import choose_threads, usable_cpus

BUNDLED = ["shapes-diffusion", "shapes-hybrid", "shapes-hybrid-fast", "shapes-ar"]
SECTION = "## Speed ledger"
SHARED_NOTE = ("Run while a training run and other jobs shared the machine: times are several times a quiet "
               "machine's, so compare within the run; 'alone' means without the added busy process.")


def precision_plan(requested: list[str], fast_bf16: bool) -> list[str]:
    """The precisions to run, resolved ('auto' is bf16 with bf16 kernels, else fp32), each once."""
    out = []
    for p in requested:
        p = ("bf16" if fast_bf16 else "fp32") if p == "auto" else p
        if p not in out:
            out.append(p)
    return out


def model_table(rows: list[dict], peak: dict) -> list[str]:
    lines = ["| model | precision | s / clip (frames) | streaming fps | first frame s | peak RSS MB | backbone GFLOP / clip | "
             "backbone GFLOP/s | share of matmul peak |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        fps = f"{r['stream_fps']:.1f}" if "stream_fps" in r else "-"
        first = f"{r['first_frame_s']:.2f}" if "first_frame_s" in r else "-"
        lines.append(f"| {r['model']} | {r['precision']} | {r['s_per_clip']:.2f} ({r['frames']}) | {fps} | {first} | "
                     f"{r['peak_rss_mb']:.0f} | {r['backbone_gflop']:.1f} | {r['backbone_gflop_per_s']:.1f} | "
                     f"{100 * r['backbone_gflop_per_s'] / peak[r['precision']]:.0f}% of {peak[r['precision']]:.0f} |")
    return lines


def step_table(steps: list[dict]) -> list[str]:
    lines = ["| precision | framecast ms / step | diffusers ms / step | framecast speed | where framecast's time goes | "
             "where diffusers' time goes |", "|---|---|---|---|---|---|"]
    share = lambda b: ", ".join(f"{k} {100 * v:.0f}%" for k, v in b.items())  # noqa: E731
    for s in steps:
        lines.append(f"| {s['precision']} | {1e3 * s['framecast_s']:.1f} | {1e3 * s['diffusers_s']:.1f} | "
                     f"{s['diffusers_s'] / s['framecast_s']:.2f}x | {share(s['framecast_breakdown'])} | "
                     f"{share(s['diffusers_breakdown'])} |")
    return lines


def _plain(r: dict) -> bool:
    """A row with an explicit thread count and OpenMP's default waits."""
    return r["chosen_by"] != "policy" and r.get("omp_wait_policy", "default") == "default"


def thread_table(rows: list[dict]) -> list[str]:
    best = min(r["s"] for r in rows if not r["neighbour"] and _plain(r))
    lines = ["| beside a busy process | threads | chosen by | OpenMP waits | s / generation | vs the best alone |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {'yes' if r['neighbour'] else 'no'} | {r['threads']} | {r['chosen_by']} | "
                     f"{r.get('omp_wait_policy', 'default').lower()} | {r['s']:.2f} | {r['s'] / best:.1f}x |")
    return lines


def headline(result: dict) -> list[str]:
    """The findings as sentences, from the figures."""
    out = []
    for s in result.get("step", []):
        out.append(f"framecast's denoising step ({s['precision']}) takes {1e3 * s['framecast_s']:.1f} ms against diffusers' "
                   f"{1e3 * s['diffusers_s']:.1f} ms ({s['diffusers_s'] / s['framecast_s']:.2f}x as fast).")
    rows = result.get("threads")
    if rows:
        cores = max(r["threads"] for r in rows)
        pick = lambda busy, test: next(r for r in rows if r["neighbour"] == busy and test(r))  # noqa: E731
        alone = pick(False, lambda r: _plain(r) and r["threads"] == cores)
        crowded = pick(True, lambda r: _plain(r) and r["threads"] == cores)
        policy = pick(True, lambda r: r["chosen_by"] == "policy")
        out.append(f"Beside one busy process, {cores} threads took {crowded['s'] / alone['s']:.1f}x as long as alone; "
                   f"the thread policy chose {policy['threads']} and took {policy['s'] / alone['s']:.1f}x "
                   f"({crowded['s'] / policy['s']:.1f}x faster than {cores} threads).")
        passive = [r for r in rows if r.get("omp_wait_policy", "default") != "default"]
        if len(passive) == 2:
            quiet, busy = sorted(passive, key=lambda r: r["neighbour"])
            out.append(f"With OMP_WAIT_POLICY=PASSIVE, {cores} threads took {quiet['s'] / alone['s']:.2f}x the default's time "
                       f"alone and {busy['s'] / alone['s']:.1f}x alone's beside the busy process.")
    return out


def tables(result: dict) -> list[str]:
    peak, threads = result["matmul_peak_gflop_per_s"], result["threads"]
    lines = [f"Matmul peak ({threads} thread{'s' if threads != 1 else ''}): " + ", ".join(f"{p} {v:.0f} GFLOP/s" for p, v in peak.items()) + "."]
    if result.get("models"):
        lines += ["", *model_table(result["models"], peak)]
    if result.get("step"):
        s = result["step"][0]
        lines += ["", f"One guided denoising step of shapes-diffusion's backbone (width {s['width']}, depth {s['depth']}, "
                  f"{s['heads']} heads, {s['tokens']} tokens, {s['text_tokens']} text tokens, batch {s['batch']}) and of "
                  "diffusers' WanTransformer3DModel of the same sizes, in turns, median:", "", *step_table(result["step"])]
    if result.get("threads_rows"):
        lines += ["", f"One shapes-diffusion generation ({result['thread_steps']} steps) alone and beside a process running "
                  "matmuls on one thread:", "", *thread_table(result["threads_rows"])]
    lines += ["", *headline({**result, "threads": result.get("threads_rows")})]
    if result.get("notes"):
        lines += ["", result["notes"]]
    return lines


def replace_section(doc: str, section: str) -> str:
    """`doc` with its SECTION (to the next '## ' heading or the end) replaced by `section`, or
    with `section` appended where it has none."""
    pattern = re.compile(rf"^{re.escape(SECTION)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(doc):
        return pattern.sub(lambda _: section.rstrip("\n") + "\n\n", doc, count=1).rstrip("\n") + "\n"
    return doc.rstrip("\n") + "\n\n" + section.rstrip("\n") + "\n"


def docs_section(result: dict) -> str:
    m = result["machine"]
    return "\n".join([SECTION, "", "```bash", result["command"], "```", "",
                      f"Machine: {describe(m)}, torch {m['torch']}. [speed.md](../benchmarks/results/speed.md) holds the "
                      "same tables; the script's docstring says what each column measures. `framecast generate`, `eval` "
                      "and `serve` take `--threads N` (or FRAMECAST_THREADS=N); without it framecast.threads gives PyTorch "
                      "the cores this process may use less those other processes keep busy, so a busy neighbour costs "
                      "its share and no more.", "", *tables(result), ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=[], help="further model names or folders (after the bundled ones)")
    ap.add_argument("--only", nargs="*", default=[], help="model names to run instead of the bundled ones (a quick check)")
    ap.add_argument("--precisions", nargs="+", choices=("auto", "fp32", "bf16"), default=["auto", "fp32"])
    ap.add_argument("--threads", type=int, default=None, help="default: FRAMECAST_THREADS, else framecast.threads' choice")
    ap.add_argument("--repeats", type=int, default=3, help="generations timed per model (median)")
    ap.add_argument("--stream-frames", type=int, default=32)
    ap.add_argument("--step-reps", type=int, default=20, help="turns of each step (median)")
    ap.add_argument("--thread-steps", type=int, default=10, help="sampling steps of the generation timed for threads")
    ap.add_argument("--thread-repeats", type=int, default=2)
    ap.add_argument("--sections", nargs="+", choices=("models", "step", "threads"), default=["models", "step", "threads"])
    ap.add_argument("--shared", action="store_true", help="say under the tables that other work shared the machine")
    ap.add_argument("--output", type=Path, default=Path("benchmarks/results/speed.json"))
    ap.add_argument("--docs", default="docs/performance.md", help="'' to leave the docs alone")
    a = ap.parse_args()
    threads, _ = choose_threads(a.threads)
    torch.set_num_threads(threads)
    fast = has_fast_bf16("cpu")
    plan = precision_plan(a.precisions, fast)
    result = {"threads": threads, "auto_precision": resolve_precision("auto", "cpu"), "precisions": plan, "notes": SHARED_NOTE if a.shared else "",
              "matmul_peak_gflop_per_s": peaks(sorted(set(plan) | {"fp32", "bf16"}, key=["fp32", "bf16"].index), fast)}
    print(tables(result)[0], flush=True)
    if "models" in a.sections:
        result["models"] = []
        for name in (a.only or BUNDLED) + a.models:
            for p in plan:
                r = in_own_process(measure_model, name, p, threads, a.repeats, a.stream_frames)
                result["models"].append(r)
                print(model_table([r], result["matmul_peak_gflop_per_s"])[-1], flush=True)
    if "step" in a.sections:
        result["step"] = [in_own_process(step_against_wan, "shapes-diffusion", p, threads, a.step_reps) for p in plan]
        print("\n".join(step_table(result["step"])[2:]), flush=True)
    if "threads" in a.sections:
        result["thread_steps"] = a.thread_steps
        result["threads_rows"] = thread_rows("shapes-diffusion", a.thread_steps, a.thread_repeats, len(usable_cpus()))
    precision = " and ".join(plan)
    write_report(a.output, result, tables(result), precision=precision)
    if a.docs:
        docs = Path(a.docs)
        result["machine"] = machine("cpu") | {"precision": precision}
        result["command"] = shlex.join(["python", *sys.argv])
        docs.write_text(replace_section(docs.read_text() if docs.exists() else "# Performance\n", docs_section(result)))


if __name__ == "__main__":
    main()
