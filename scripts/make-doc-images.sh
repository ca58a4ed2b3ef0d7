#!/usr/bin/env bash
# The images of docs/guide.md, "Predict and visualize", made by the commands shown there.
# Needs the demo model (make demo: runs/demo/synth_points_ewa) and the synthetic shapes (and, for
# show_parts.png, the synthetic-parts runs of docs/results.md); trains a
# short Point-MAE pretraining (about 3 minutes on 2 cores) for the Point-MAE view.
set -euo pipefail
EWA=${EWA:-build/ewa}
RUN=runs/demo/synth_points_ewa
OUT=docs/images
[ -f "$RUN/last.pt" ] || { echo "make-doc-images: $RUN/last.pt missing: run make demo first" >&2; exit 1; }
mkdir -p "$OUT"
FILES=data/synthetic_files
[ -d "$FILES/torus" ] || "$EWA" data synth-files -o "$FILES" --per-class 2
PAIR="$FILES/torus/torus_0.ply $FILES/cone/cone_0.ply"
"$EWA" predict "$RUN/last.pt" "$FILES" -k 3
"$EWA" show "$RUN/last.pt" $PAIR --png "$OUT/show_class.png" --size 320x320 --force
"$EWA" show "$RUN/last.pt" $PAIR --color patches --png "$OUT/show_patches.png" --size 320x320 --force
"$EWA" show "$RUN/last.pt" $PAIR --color attention --png "$OUT/show_attention.png" --size 320x320 --force
if [ ! -f runs/demo/synth_pretrain_short/last.pt ]; then
  "$EWA" pretrain --config configs/synth_pretrain.json --name synth_pretrain_short \
    --set train.runs_dir=runs/demo --set data.root=data/synthetic_shapes --set train.epochs=4 --set pretrain.reconstructions=0
fi
"$EWA" show runs/demo/synth_pretrain_short/last.pt "$FILES/torus/torus_0.ply" --color mae --png "$OUT/show_mae.png" --force \
  --size 720x260 --zoom 0.35
"$EWA" gallery "$RUN/last.pt" --split test -n 16 --size 160x160 -o "$OUT/gallery_test.png" --force
cp "$RUN"/plots/{loss,accuracy,schedule,confusion}.png "$OUT/"
# Part segmentation (README): the converted EWA model of docs/results.md, seed 0, on one test shape
# of each synthetic category.
SEG=runs/synth_parts_ewa_s0
if [ -f "$SEG/last.pt" ]; then
  [ -f "$SEG/dense.pt" ] || "$EWA" convert "$SEG/last.pt" -o "$SEG/dense.pt"
  "$EWA" show "$SEG/dense.pt" data/synthetic_parts/*/synth_test_0000.txt --png "$OUT/show_parts.png" --columns 3 --force
else
  echo "make-doc-images: $SEG/last.pt missing (docs/results.md, synthetic parts): show_parts.png not redrawn" >&2
fi
ls -l "$OUT"
