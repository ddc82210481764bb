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

EMOJI := docs/images/emoji

# The main job on built-in data: codec tour, cache, ~1 minute of CPU training, samples,
# completions, evaluation, ONNX export and onnxruntime sampling, then the other art forms
# (pixel art, ASCII, a sigil denoiser, Symbol Art) and a listing of the runs. Everything lands in $(DEMO)/.
demo: setup
	@mkdir -p $(DEMO)
	@echo "== 1. codec tour: bundled emoji through hsv544 / hsv433 / hsv322, side by side"
	$(ARTFORGE) preview $(EMOJI) -c hsv544 -c hsv433 -c hsv322 -o $(DEMO)/tour.png
	$(ARTFORGE) encode -c hsv433 $(EMOJI) -o $(DEMO)/emoji-hsv433.npz
	$(ARTFORGE) decode $(DEMO)/emoji-hsv433.npz -o $(DEMO)/emoji-hsv433.png
	@echo "== 2. token cache of the built-in emoji set (16x16, hsv433)"
	$(ARTFORGE) data build builtin:emoji32 -c hsv433 --size 16 -o $(DEMO)/emoji16.h5
	$(ARTFORGE) data info $(DEMO)/emoji16.h5
	@echo "== 3. train the tiny pixel transformer for about a minute on the CPU (10% of the images kept"
	@echo "   as a test split that chooses nothing: eval reports on it)"
	rm -rf $(DEMO)/run
	$(ARTFORGE) train --plugin hsv-transformer --data $(DEMO)/emoji16.h5 --set preset=tiny \
		--set train.test_fraction=0.1 --steps 400 --batch-size 32 --lr 3e-3 --eval-every 100 -o $(DEMO)/run
	@echo "== 4. sample, complete, evaluate"
	$(ARTFORGE) sample $(DEMO)/run -n 36 -t 0.9 -o $(DEMO)/samples.png
	$(ARTFORGE) complete $(DEMO)/run $(EMOJI) --keep-rows 8 -n 4 -o $(DEMO)/complete.png
	$(ARTFORGE) eval $(DEMO)/run
	@echo "== 5. export to ONNX and sample with onnxruntime alone"
	$(ARTFORGE) export $(DEMO)/run --onnx
	$(ARTFORGE) sample --onnx $(DEMO)/run/onnx -n 16 -o $(DEMO)/onnx-samples.png
	@echo "== 6. other art forms: one emoji as PICO-8 pixel art and as ASCII art"
	$(ARTFORGE) convert $(EMOJI)/tiger-face.png --codec palette:pico8 --size 32 --dither floyd \
		-o $(DEMO)/tiger-pico8.png
	$(ARTFORGE) convert $(EMOJI)/tiger-face.png --codec ascii:32x16 -o $(DEMO)/tiger.txt \
		--png $(DEMO)/tiger-ascii.png
	@cat $(DEMO)/tiger.txt
	@echo
	@echo "== 7. sigils: a denoising autoencoder (300 steps, ~25 s) against a 3x3 median filter"
	$(ARTFORGE) data build builtin:sigils64 -c binary --size 32 -o $(DEMO)/sigils32.h5
	rm -rf $(DEMO)/sigil-dae
	$(ARTFORGE) train --plugin sigil-dae --data $(DEMO)/sigils32.h5 --set preset=small --steps 300 \
		--eval-every 300 -q -o $(DEMO)/sigil-dae
	$(ARTFORGE) eval $(DEMO)/sigil-dae
	@echo "== 8. Symbol Art: the emoji as 64 layers of a .saml file, fitted by differentiable rendering"
	$(ARTFORGE) convert $(EMOJI)/tiger-face.png --codec saml:64 -o $(DEMO)/tiger.saml
	$(ARTFORGE) render $(DEMO)/tiger.saml -o $(DEMO)/tiger-saml.png
	@echo "== 9. the two runs side by side"
	$(ARTFORGE) runs $(DEMO)
	@echo "done. In $(DEMO)/: tour.png (codecs), samples.png, complete.png, onnx-samples.png,"
	@echo "tiger-pico8.png, tiger.txt, tiger-ascii.png, tiger.saml, tiger-saml.png,"
	@echo "run/ (config.json, best.pt, last.pt, metrics.jsonl, loss.png, samples/, eval.json, onnx/), sigil-dae/"

bench: setup
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(DEMO) .pytest_cache .ruff_cache
