#!/usr/bin/env bash
# The recipe of the shipped world model (wm:default, MODEL_CARD.md) from nothing, as one command:
#
#     bash examples/default_model.sh [OUT]          # OUT defaults to runs/default
#
# Actionless frames -> SIGReg-pretrained encoder (frozen) -> action-conditioned predictor
# (3,000 + 6,000 + 6,000 steps on plain scenes, then 3,000 more with randomised scenes added)
# -> a float16 export in OUT/model, loadable as wm:OUT/model.
# Rerunning the same line resumes: collections append their missing episodes, pretrain and
# train resume from their last checkpoint, finished runs are skipped.
# About 1 h 30 min on 2 CPU cores (the sum of its steps' times, MODEL_CARD.md);
# ARMWORLD_DEVICE=cuda (or cpu) picks where models train, by default the one
# `armworld pretrain`/`train` pick.
set -euo pipefail
OUT=${1:-runs/default}
mkdir -p "$OUT/data"
D="$OUT/data/reach.h5 $OUT/data/push.h5"
R="$OUT/data/reach-rand.h5 $OUT/data/push-rand.h5"
DEVICE=${ARMWORLD_DEVICE:+--device $ARMWORLD_DEVICE}

for task in Reach Push; do  # 1,000 episodes each, 64x64 top camera, the noisy expert mixed with coloured noise
  armworld collect --env armworld/Franka$task-v0 --policy mixed --noise 0.2 --episodes 1000 --workers 2 \
      --obs-mode pixels_state --image-size 64 --cameras top --seed 0 --resume --no-progress \
      --out "$OUT/data/${task,,}.h5"
  # the same in randomised scenes (colours, lighting, camera pose), reset seeds from 100,000
  armworld collect --env armworld/Franka$task-v0 --policy mixed --noise 0.2 --episodes 1000 --workers 2 \
      --obs-mode pixels_state --image-size 64 --cameras top --seed 100000 --randomization default --resume \
      --no-progress --out "$OUT/data/${task,,}-rand.h5"
done

finished() { grep -qs "\"$2\"" "$1/latest"; }  # run $1's newest checkpoint is $2

# the encoder, from the frames alone (no actions read): SIGReg (LeJEPA) with random resized crops
finished "$OUT/enc" step-001500 || armworld pretrain --data $D --camera top --preset tiny --objective sigreg --augment \
    --steps 1500 --batch-size 12 --eval-every 500 --save-every 250 $DEVICE --out "$OUT/enc"
# the predictor on the frozen encoder, in three runs (each restarts the learning-rate schedule)
finished "$OUT/wm-a" step-003000 || armworld train --data $D --camera top --encoder "$OUT/enc" --steps 3000 \
    --batch-size 16 --eval-every 1000 --save-every 500 $DEVICE --out "$OUT/wm-a"
finished "$OUT/wm-b" step-006000 || armworld train --data $D --camera top --init "$OUT/wm-a" --steps 6000 \
    --batch-size 16 --eval-every 1000 --save-every 500 $DEVICE --out "$OUT/wm-b"
finished "$OUT/wm-c" step-006000 || armworld train --data $D --camera top --init "$OUT/wm-b" --steps 6000 \
    --batch-size 16 --eval-every 1000 --save-every 500 $DEVICE --out "$OUT/wm-c"
[ -f "$OUT/model-15k/model.safetensors" ] || armworld export "$OUT/wm-c" --out "$OUT/model-15k" --dtype float16
# then on from that float16 export with the randomised scenes added, the encoder still frozen
finished "$OUT/wm-rand" step-003000 || armworld train --data $D $R --camera top --init "$OUT/model-15k" --steps 3000 \
    --batch-size 16 --eval-every 1000 --save-every 500 $DEVICE --out "$OUT/wm-rand"
# (an OUT/model exported by an earlier version of this script, from wm-c, is replaced)
grep -qs "\"$OUT/wm-rand\"" "$OUT/model/metadata.json" || armworld export "$OUT/wm-rand" --out "$OUT/model" --dtype float16
echo "plan with it: armworld eval --agent wm:$OUT/model --env armworld/FrankaReach-v0 --dataset $D $R --out $OUT/results"
