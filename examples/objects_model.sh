#!/usr/bin/env bash
# The recipe of the shipped object world model (wm:objects, MODEL_CARD.md, second card) from
# nothing, as one command:
#
#     bash examples/objects_model.sh [OUT]          # OUT defaults to runs/objects
#
# 1,000 FrankaPush episodes from the front camera -> a position reader and the cube's dynamics
# (armworld train-objects, on the CPU) -> a float16 export in OUT/model, loadable as wm:OUT/model.
# Rerunning the same line resumes the collection and skips what is finished.
# 5 min 20 s on 2 CPU cores; on the same machine it wrote the shipped weights bit for bit
# (worldmodel/weights/objects, sha256 e8006275...).
set -euo pipefail
OUT=${1:-runs/objects}
mkdir -p "$OUT/data"
armworld collect --env armworld/FrankaPush-v0 --policy mixed --noise 0.2 --episodes 1000 --workers 2 \
    --obs-mode pixels_state --image-size 64 --cameras front --seed 0 --resume --no-progress \
    --out "$OUT/data/push-front.h5"
grep -qs '"step-007000"' "$OUT/run/latest" || armworld train-objects --data "$OUT/data/push-front.h5" --camera front \
    --no-progress --out "$OUT/run"
[ -f "$OUT/model/model.safetensors" ] || armworld export "$OUT/run" --out "$OUT/model" --dtype float16
echo "plan with it: armworld eval --agent wm:$OUT/model --env armworld/FrankaPush-v0" \
    "--dataset $OUT/data/push-front.h5 --out $OUT/results"   # iCEM over 10 steps, as its config recommends
