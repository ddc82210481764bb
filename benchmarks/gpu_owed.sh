#!/bin/bash
# The GPU figures docs/benchmarks.md still owes, in two parts that each fit a 10-minute call.
#   bash benchmarks/gpu_owed.sh speed     # GPU tests, hsv training speed + sampling speed, profiles
#   bash benchmarks/gpu_owed.sh quality   # palette conv-ae with quarter turns, ascii-vae pictures
# Needs the caches in .cache/gpu/ (commands in docs/benchmarks/h100-2026-11-23/README.md) and
# writes logs to ${OUT:-gpu-out}/. Every step has its own timeout and prints as it goes.
set -u
export PYTHONUNBUFFERED=1
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
G=.cache/gpu
A="python3 -m artforge"
python3 -m pip install --no-deps --no-build-isolation -e . -q 2>&1 | grep -v WARNING
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

case "${1:-speed}" in
speed)
  timeout 120 python3 -m pytest -q -m gpu tests/test_gpu.py 2>&1 | tail -3
  timeout 240 python3 benchmarks/run.py hsv_model 2>&1 | tee "$OUT/bench_hsv_model.txt"
  timeout 200 python3 benchmarks/profile_hsv.py --rows 20 2>&1 | tee "$OUT/profile_hsv.txt"
  ;;
quality)
  timeout 330 $A train --plugin palette-conv-ae --data $G/tiles32.h5 --set preset=wide --set flip=true \
    --set turn=true -b 64 --steps 10000 --max-time 280 --eval-every 500 -q -o runs/pal-ae-turn \
    2>&1 | tee "$OUT/pal-ae-turn.txt" &
  timeout 330 $A train --plugin ascii-vae --data $G/ascii64.h5 --set preset=gpu -b 128 --steps 6000 \
    --max-time 280 --eval-every 500 -q -o runs/ascii 2>&1 | tee "$OUT/ascii.txt" &
  wait
  $A eval runs/pal-ae-turn --json > "$OUT/pal-ae-turn-eval.json"
  $A eval runs/pal-ae-turn --split train --json > "$OUT/pal-ae-turn-eval-train.json"
  python3 benchmarks/palette_errors.py runs/pal-ae-turn $G/tiles32.h5 > "$OUT/pal-ae-turn-errors.txt"
  $A eval runs/ascii --json > "$OUT/ascii-eval.json"
  timeout 120 python3 docs/images/ascii/make_images.py runs/ascii --models-only 2>&1 | tail -3
  tar czf "$OUT/pictures.tgz" docs/images/ascii/*.png runs/pal-ae-turn/loss.png runs/ascii/loss.png
  ;;
*)
  echo "usage: $0 speed|quality" >&2
  exit 2
  ;;
esac
