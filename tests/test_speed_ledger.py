"""The speed ledger's pure parts (benchmarks/speed.py): the precision plan, the tables and
headline from given figures, and the docs section it replaces."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
speed = pytest.importorskip("speed")

STEP = {"precision": "fp32", "framecast_s": 0.05, "diffusers_s": 0.06, "width": 256, "depth": 8, "heads": 4, "tokens": 128,
        "text_tokens": 16, "batch": 2, "framecast_breakdown": {"MLP": 0.4, "other": 0.1},
        "diffusers_breakdown": {"MLP": 0.5, "other": 0.1}}
THREADS = [{"neighbour": False, "threads": 1, "chosen_by": "--threads", "s": 1.0},
           {"neighbour": False, "threads": 2, "chosen_by": "--threads", "s": 0.6},
           {"neighbour": False, "threads": 2, "chosen_by": "policy", "s": 0.6},
           {"neighbour": False, "threads": 2, "chosen_by": "--threads", "omp_wait_policy": "PASSIVE", "s": 0.66},
           {"neighbour": True, "threads": 1, "chosen_by": "--threads", "s": 1.1},
           {"neighbour": True, "threads": 2, "chosen_by": "--threads", "s": 9.0},
           {"neighbour": True, "threads": 1, "chosen_by": "policy", "s": 1.2},
           {"neighbour": True, "threads": 2, "chosen_by": "--threads", "omp_wait_policy": "PASSIVE", "s": 1.5}]
MODEL = {"model": "shapes-hybrid", "precision": "fp32", "s_per_clip": 3.0, "frames": 16, "stream_fps": 5.0, "first_frame_s": 0.2,
         "peak_rss_mb": 500.0, "backbone_gflop": 90.0, "backbone_gflop_per_s": 30.0}


def test_precision_plan_resolves_auto_once():
    assert speed.precision_plan(["auto", "fp32"], fast_bf16=False) == ["fp32"]
    assert speed.precision_plan(["auto", "fp32"], fast_bf16=True) == ["bf16", "fp32"]
    assert speed.precision_plan(["bf16"], fast_bf16=False) == ["bf16"]


def test_tables_and_headline_from_figures():
    result = {"threads": 2, "matmul_peak_gflop_per_s": {"fp32": 60.0, "bf16": 1.0}, "models": [MODEL], "step": [STEP],
              "thread_steps": 10, "threads_rows": THREADS, "notes": "Ran beside other work."}
    text = "\n".join(speed.tables(result))
    assert "| shapes-hybrid | fp32 | 3.00 (16) | 5.0 | 0.20 | 500 | 90.0 | 30.0 | 50% of 60 |" in text
    assert "1.20x" in text and "| yes | 2 | --threads | default | 9.00 | 15.0x |" in text
    assert "PASSIVE, 2 threads took 1.10x the default's time alone and 2.5x alone's beside" in text
    assert "2 threads took 15.0x as long as alone; the thread policy chose 1 and took 2.0x (7.5x faster" in text
    assert text.endswith("Ran beside other work.")


def test_docs_section_is_replaced_in_place():
    doc = "# Performance\n\nintro\n\n## Speed ledger\n\nold table\n\n## Step caching\n\nkept\n"
    new = speed.replace_section(doc, "## Speed ledger\n\nnew table\n")
    assert new == "# Performance\n\nintro\n\n## Speed ledger\n\nnew table\n\n## Step caching\n\nkept\n"
    assert speed.replace_section("# Performance\n", "## Speed ledger\n\nt\n") == "# Performance\n\n## Speed ledger\n\nt\n"
    assert speed.replace_section(new, "## Speed ledger\n\nnew table\n") == new
    last = "# P\n\n## Speed ledger\n\nold\n"
    assert speed.replace_section(last, "## Speed ledger\n\nnew\n") == "# P\n\n## Speed ledger\n\nnew\n"
