#!/usr/bin/env bash
# One GPU loan, spent on training: run from the repository root on the lent machine, with the packed corpus
# (trainer.pack_corpus, <= 60 MB) and the initial weights carried in the git-ignored device/ folder:
#
#   python -m trainer.pack_corpus ../data/corpus-v3 --out device/corpus --max-mb 60
#   cp weights/ipdnet-layer2-corpus-v2.pt device/init.pt
#   run(command="bash trainer/device_run.sh", carry=["device"], timeout_s=600)
#
# Trains for MINUTES (default 8) with the v3 options, then copies the run's checkpoints and metrics to $OUT;
# calibration and the release checks run afterwards on the CPU (their photos stay here). Nothing to set up:
# the device has torch, torchvision, pillow, numpy and scikit-learn; ipdscan runs from the checkout.
set -euo pipefail
OUT="${OUT:?set by the device tool}"
MINUTES="${MINUTES:-8}"
EXTRA="${EXTRA:-}"   # e.g. EXTRA=--npr for the NPR ablation (then drop --init-from: the stem differs)
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader > "$OUT/device.txt" || true
INIT=""
[ -f device/init.pt ] && [[ "$EXTRA" != *--npr* ]] && INIT="--init-from device/init.pt"
# bs 256 and 14 decode workers keep an H100/H200 fed (about 4.5k img/s for layer2 in bf16); lr scaled by 4 for
# the 8x batch (square-root rule), the paper's 1e-4 at batch 32.
python -m ipdscan.train device/corpus --out "$OUT/run" --device cuda --batch-size 256 --lr 4e-4 \
    --workers 14 --max-minutes "$MINUTES" --val-every 200 --plateau-metric ap --pair-sync \
    --blur-prob 0.3 --jpeg-prob 0.3 --downscale-prob 0.2 --no-progress $INIT $EXTRA 2>&1 | tee "$OUT/train.log"
python - "$OUT/run" <<'PY' > "$OUT/summary.txt"
import json, sys
events = [json.loads(line) for line in open(sys.argv[1] + "/metrics.jsonl")]
print(json.dumps([e for e in events if e["event"] in ("val", "end")][-6:], indent=1))
PY
rm -f "$OUT/run/last.state.pt"  # optimizer state: not needed here, and it doubles what comes back
