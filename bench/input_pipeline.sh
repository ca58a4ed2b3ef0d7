#!/bin/bash
# The image input pipeline against the training step it feeds (docs/benchmarks.md): a folder of
# ImageNet-sized JPEGs (bench/make_image_folder.py: 10 classes x 64, 500x375), a dense ViT-Tiny/16
# at 224 with batch 32; `ewa bench input` (batches built with the run's threads and with one,
# against the step), then a 2-epoch training run whose progress lines say how long each step still
# waited for its batch (built ahead on a thread of its own).
#   bash bench/input_pipeline.sh [WORKDIR]      RECORD=docs/benchmarks.md appends the bench's table
set -euo pipefail
EWA=${EWA:-build/ewa}
PY=${EWA_VENV:-/opt/ewa-venv}/bin/python
WORK=${1:-$(mktemp -d)}
mkdir -p "$WORK"
[ -d "$WORK/images" ] || "$PY" bench/make_image_folder.py "$WORK/images"
RUN=$(mktemp -d "$WORK/run.XXXXXX")  # this invocation's config and run: nothing of an earlier one is replaced
cat > "$RUN/input.json" <<EOF
{"name": "input_pipeline", "model": {"name": "vit", "preset": "tiny", "patch_size": 16}, "moe": {"kind": "dense"},
 "data": {"dataset": "image_folder", "root": "$WORK/images", "image_size": 224, "batch_size": 32,
          "random_crop_padding": 0, "hflip": true, "cache_dir": "$WORK/cache"},
 "optim": {"lr": 0.0005, "warmup_epochs": 0}, "train": {"epochs": 2, "runs_dir": "$RUN/runs", "log_every": 5}}
EOF
"$EWA" bench input --config "$RUN/input.json" --batches 20 --step-repeats 5 ${RECORD:+--record "$RECORD"}
"$EWA" train --config "$RUN/input.json" | grep -E "ms/step|done in"
