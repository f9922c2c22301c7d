#!/usr/bin/env bash
# The data pipeline on a CUDA GPU, for the target of `tiny` JEPA pretraining at >= 5,000 clips/s
# with the GPU >= 85% busy: benchmarks/worldmodel_speed.py --parts pipeline (streamed from the
# file and decoded into memory, in the same run) at batch 128 and 512, on a synthetic file of
# 400 episodes (61 frames of 64x64 each, gzip-compressed as collected files are).
#
#   bash benchmarks/gpu_pipeline.sh [OUT_DIR]     # from the project root, armworld importable; a few minutes
#
# Writes OUT_DIR/pipeline-b<batch>.json (default OUT_DIR: gpu-pipeline) and prints a table last.
set -euo pipefail
out=${1:-gpu-pipeline}
mkdir -p "$out"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
for batch in 128 512; do
    python benchmarks/worldmodel_speed.py --parts pipeline --device cuda --threads 8 --episodes 400 \
        --pipeline-batch-size "$batch" --pipeline-batches 50 --pipeline-steps 100 --workers 0 8 \
        > "$out/pipeline-b$batch.json"
done
python - "$out" <<'PY'
import json, sys
from pathlib import Path

print(f"{'batch':>5} {'data':>6} {'workers':>7} {'pipeline clips/s':>16} {'train clips/s':>13} {'GPU busy %':>10}")
for path in sorted(Path(sys.argv[1]).glob("pipeline-b*.json")):
    result = json.loads(path.read_text())["pipeline"]
    for row in result["rows"]:
        busy = "" if row["gpu_busy_percent"] is None else f"{row['gpu_busy_percent']:.0f}"
        print(f"{result['batch_size']:>5} {row['placed']:>6} {row['workers']:>7} {row['pipeline_clips_per_s']:>16.0f} "
              f"{row['train_clips_per_s']:>13.0f} {busy:>10}")
PY
