#!/bin/bash
# GPU call 2: hsv speed bench alone, then the quality runs side by side on the one H100.
export PYTHONUNBUFFERED=1
G=.cache/gpu
A="python3 -m artforge"
python3 -m pip install --no-deps --no-build-isolation -e . -q 2>&1 | grep -v WARNING
echo "== bench hsv model"; timeout 200 python3 benchmarks/run.py hsv_model 2>&1 | grep -v Warning
echo "== quality runs, side by side"; date
timeout 330 $A train --plugin hsv-transformer --data $G/emoji32.h5 --set preset=base --set dropout=0.2 \
  -b 64 --lr 6e-4 --steps 1500 --max-time 260 --eval-every 100 --compile -q -o runs/hsv > runs-hsv.log 2>&1 &
timeout 330 $A train --plugin palette-conv-ae --data $G/tiles32.h5 --set preset=wide --set flip=true -b 64 \
  --steps 8000 --max-time 260 --eval-every 500 -q -o runs/pal-ae > runs-pal-ae.log 2>&1 &
timeout 330 $A train --plugin palette-conv-vae --data $G/tiles32.h5 --set preset=wide --set flip=true -b 64 \
  --steps 8000 --max-time 260 --eval-every 500 -q -o runs/pal-vae > runs-pal-vae.log 2>&1 &
timeout 330 $A train --plugin ascii-vae --data $G/ascii64.h5 --set preset=gpu -b 128 \
  --steps 6000 --max-time 260 --eval-every 500 -q -o runs/ascii > runs-ascii.log 2>&1 &
wait; date; tail -n 3 runs-*.log
for r in hsv pal-ae pal-vae ascii; do echo "== eval $r"; timeout 60 $A eval runs/$r --json | tr -d '\n' | cut -c1-600; echo; done
timeout 60 $A sample runs/hsv -n 64 -t 1.0 -o runs/hsv/samples-64.png
timeout 60 $A complete runs/hsv docs/images/emoji --keep-rows 16 -n 4 -o runs/hsv/complete.png
timeout 60 $A sample runs/pal-vae -n 64 -o runs/pal-vae/samples-64.png
timeout 60 $A sample runs/ascii -n 8 -o runs/ascii/samples-8.png
for r in hsv pal-ae pal-vae ascii; do grep '"val"' runs/$r/metrics.jsonl | cut -c1-220 | tail -n 8; done
tar czf $OUT/runs.tgz --exclude='*.pt' runs/hsv runs/pal-ae runs/pal-vae runs/ascii runs-*.log
ls -la $OUT
