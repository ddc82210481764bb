#!/bin/bash
# GPU call 1: install, GPU tests, hsv speed bench, short quality/speed probes.
export PYTHONUNBUFFERED=1
G=.cache/gpu
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
python3 -m pip install --no-deps --no-build-isolation -e . -q 2>&1 | tail -2
python3 -c "import torch, artforge; print(torch.__version__, artforge.__version__)"
echo "== gpu tests"; timeout 200 python3 -m pytest -q -m gpu tests/test_gpu.py -x 2>&1 | tail -15
echo "== bench hsv model"; timeout 300 python3 benchmarks/run.py hsv_model 2>&1
echo "== probe hsv base d0.2 (90 s)"
timeout 150 python3 -m artforge train --plugin hsv-transformer --data $G/emoji32.h5 --set preset=base --set dropout=0.2 \
  -b 64 --lr 6e-4 --steps 1800 --max-time 90 --eval-every 150 --compile -q -o runs/probe-hsv 2>&1 | tail -3
grep '"val"' runs/probe-hsv/metrics.jsonl | cut -c1-200
echo "== probe palette wide (40 s)"
timeout 90 python3 -m artforge train --plugin palette-conv-ae --data $G/tiles32.h5 --set preset=wide --set flip=true -b 64 \
  --steps 20000 --max-time 40 --eval-every 500 -q -o runs/probe-pal 2>&1 | tail -3
tail -2 runs/probe-pal/metrics.jsonl | cut -c1-250
echo "== probe ascii gpu (40 s)"
timeout 90 python3 -m artforge train --plugin ascii-vae --data $G/ascii64.h5 --set preset=gpu -b 128 \
  --steps 20000 --max-time 40 --eval-every 500 -q -o runs/probe-ascii 2>&1 | tail -3
tail -2 runs/probe-ascii/metrics.jsonl | cut -c1-250
