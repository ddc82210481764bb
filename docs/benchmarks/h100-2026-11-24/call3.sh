#!/bin/bash
# Third call of the 2026-11-24 H100 session: training-speed variants of the hsv-transformer base
# preset, sampling at batch 256, then two continuations of the best palette-conv-ae run of call 2.
set -u
export PYTHONUNBUFFERED=1
G=.cache/gpu
A="python3 -m artforge"
python3 -m pip install --no-deps --no-build-isolation -e . -q 2>&1 | grep -v WARNING
P="python3 benchmarks/profile_hsv.py --only train --rows 0 --steps 20 --batch 128 --head-multiple 64"
timeout 50 $P --dropout 0
timeout 50 $P --attention flash
timeout 50 $P --dropout 0 --attention flash
# the same through the engine (what `artforge train` logs), preset base with dropout 0, batch 128
timeout 100 $A train --plugin hsv-transformer --data $G/emoji32.h5 --set preset=base --set dropout=0 -b 128 \
  --steps 120 --eval-every 1000 --sample-every 1000 --compile -q -o runs/mfu > /dev/null 2>&1
grep '"train"' runs/mfu/metrics.jsonl | tail -3 | cut -c1-400
timeout 100 python3 benchmarks/profile_hsv.py --only decode --sample-batch 256 --rows 0
# palette: continue pal-ws (flips, turns, shifts) and pal-w (+ shifts now) at lr 1e-3
mkdir -p runs/init && cp $G/pal-ws-best.pt $G/pal-w-best.pt runs/init/
C="--data $G/tiles32.h5 -b 64 --eval-every 500 --lr 1e-3 --max-time ${PAL_TIME:-230} -q"
$A train --init runs/init/pal-ws-best.pt $C --steps 7000 -o runs/pal-ws2 > "$OUT/train-pal-ws2.txt" 2>&1 &
$A train --init runs/init/pal-w-best.pt $C --set shift=2 --steps 7000 -o runs/pal-w2 > "$OUT/train-pal-w2.txt" 2>&1 &
wait
for r in pal-ws2 pal-w2; do
  ( for a in "--checkpoint best" "--checkpoint last" "--checkpoint best --refine 100" "--checkpoint last --refine 100" \
        "--checkpoint best --split train"; do
      echo "{\"run\": \"$r\", \"args\": \"$a\", \"eval\": $($A eval runs/$r $a --json)}"
    done > runs/$r/evals.jsonl ) &
done
wait
python3 - <<'PY'
import json, glob
for f in sorted(glob.glob("runs/pal-*/evals.jsonl")):
    dec, text = json.JSONDecoder(), open(f).read()
    i = 0
    while i < len(text.strip()):
        d, j = dec.raw_decode(text, i); i = j + 1
        e = d["eval"]; fg = e["figures"]
        print(d["run"], d["args"], "step", e["step"], f"pixel {fg['pixel_accuracy']:.4f}", f"exact {fg['exact_image_accuracy']:.3f}",
              f"nats {fg['recon_nats_per_image']:.1f}")
PY
for r in pal-ws2 pal-w2; do
  python3 -c "import sys, torch; s = torch.load(sys.argv[1], weights_only=True); \
torch.save({k: s[k] for k in ('format', 'version', 'config', 'model')}, sys.argv[2])" runs/$r/best.pt "$OUT/$r-best.pt"
done
tar czf "$OUT/runs.tgz" runs/pal-*/{config.json,metrics.jsonl,evals.jsonl,loss.png} runs/mfu/metrics.jsonl
