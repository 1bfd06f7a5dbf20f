"""Print N tuning prompts, one a line: the captions of the Shapes train split's clips of seeds
60000 .. 60000 + N - 1, outside the evaluation prompts (`framecast eval --prompts train` uses
seeds 0 .. num - 1). Sampling defaults are chosen on these, never on the evaluation.

    python tools/tune_prompts.py 120 > tune.txt
    framecast eval --model shapes-diffusion --prompts tune.txt --num 120 --seed 60000 --output tune.json
"""

from __future__ import annotations

import sys

from framecast.data.shapes import render_clip

FIRST_SEED = 60000

if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 120
    print("\n".join(render_clip(FIRST_SEED + i).caption for i in range(n)))
