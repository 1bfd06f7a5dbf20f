# framecast: `make demo` and `make test` work on a fresh machine (Python 3.11, CPU).
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/pip install --quiet --disable-pip-version-check -c constraints.txt
STAMP := $(VENV)/.installed
DEV_STAMP := $(VENV)/.installed-dev

.PHONY: install dev demo test bench clean

$(BIN)/python:
	$(PY) -m venv $(VENV)

# torch first, pinned to the CPU build on this machine's disk (an unpinned torch pulls a CUDA build).
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(PIP) torch==2.13.0
	$(PIP) -e .
	touch $@

# The browser test (tests/test_serve_browser.py) drives Debian's Chromium: Playwright's own browser
# download needs the network. Installed once; without it (no root, no apt) that test is skipped.
$(DEV_STAMP): $(STAMP)
	$(PIP) -e ".[dev]"
	command -v chromium >/dev/null || (apt-get update -qq && apt-get install -y -qq chromium) || echo "chromium not installed: the browser test will be skipped"
	touch $@

install: $(STAMP)

dev: $(DEV_STAMP)

demo: $(STAMP)
	$(BIN)/framecast generate "a big red circle moves right and a small blue square moves left" \
		--model shapes-diffusion --seed 0 --output demo.mp4 --overwrite
	$(BIN)/framecast generate "a big red circle moves right and a small blue square moves left" \
		--model shapes-diffusion --seed 0 --output demo.png --overwrite

# Lint first: ruff, then the layers and no-cycles contracts of pyproject.toml's [tool.importlinter].
test: $(DEV_STAMP)
	$(BIN)/ruff check framecast tests benchmarks tools
	$(BIN)/lint-imports
	$(BIN)/python -m pytest

bench: $(STAMP)
	$(BIN)/python benchmarks/backbone.py --output benchmarks/results/backbone.json

clean:
	rm -rf $(VENV) runs .pytest_cache .hypothesis .import_linter_cache .ruff_cache demo.mp4 demo.png
