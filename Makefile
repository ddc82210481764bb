# Two commands do everything on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
ARTFORGE := $(VENV)/bin/artforge
STAMP  := $(VENV)/.artforge-installed
DEMO   ?= demo-out

.PHONY: setup test lint demo bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned: on these machines 2.13.0 is a CPU wheel on local disk;
	# a looser pin would download gigabytes of CUDA.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

lint: setup
	$(PY) -m ruff check .

test: setup lint
	$(PY) -m pytest -q

demo: setup
	@echo "== codec tour: encode bundled emoji at hsv544/433/322, decode, side-by-side PNG"
	$(ARTFORGE) tour -o $(DEMO)/tour.png

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
