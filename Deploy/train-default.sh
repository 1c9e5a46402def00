#!/usr/bin/env bash
# Trains the shipped default encoder (Config/model/encoder.onnx) and store (Config/model/store/)
# from the Mindforge photos beside the project, with release binaries, and prints the wall and CPU
# time of the whole procedure. MODEL_CARD.md describes the result.
#   DATA   photos (default ../shared/data/mindforge)      WORK  scratch dir (default /tmp/beand-train-default)
#   EPOCHS backbone epochs (default 12), STEPS_PER_EPOCH (default 0 = all crops), ZOOM view magnification
#   (default 0.5)   LABELS labelled beans (default 200), GOOD_SHARE share of them that are good
#   beans (default 0.5; "proportional" = every label in proportion, the recipe before 2026-11-23's
#   seventh session)
#   BACKBONE_ARGS  more options of beanctl train backbone (e.g. "--stem-stride 3")
#   OUT    where encoder.onnx and store/ go (default Config/model)
#   CROP_SIZE  side of the crops in pixels, the encoder's input (default 64; give WORK its own
#   directory per size, the crop cache holds one size)
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
DATA="${DATA:-$ROOT/../shared/data/mindforge}"
# One spelling of the path: the crop cache is keyed by it.
DATA="$(cd "$DATA" 2>/dev/null && pwd -P || echo "$DATA")"
WORK="${WORK:-/tmp/beand-train-default}"
EPOCHS="${EPOCHS:-12}"
STEPS_PER_EPOCH="${STEPS_PER_EPOCH:-0}"
ZOOM="${ZOOM:-0.5}"
LABELS="${LABELS:-200}"
GOOD_SHARE="${GOOD_SHARE:-0.5}"
OUT="${OUT:-$ROOT/Config/model}"
[ -d "$DATA" ] || { echo "no photos at $DATA (see ../shared/data/README.md)" >&2; exit 1; }
[ -x "$BIN/beanctl" ] || { echo "$BIN/beanctl not built (swift build -c release --product beanctl)" >&2; exit 1; }
mkdir -p "$WORK" "$OUT"
CROPS=(--preset mindforge --crop-cache "$WORK/crops.cache" --crop-size "${CROP_SIZE:-64}")
start=$(date +%s)
# Steps run as children, so the shell's `times` adds up their CPU time.
"$BIN/beanctl" train backbone --crops "$DATA" "${CROPS[@]}" --out "$WORK/backbone" --epochs "$EPOCHS" \
  --max-steps-per-epoch "$STEPS_PER_EPOCH" --zoom "$ZOOM" --seed 1 ${BACKBONE_ARGS:-}
rm -rf "$OUT/store.new"
"$BIN/beanctl" train head --tree "$DATA" --labels "$LABELS" --good-share "$GOOD_SHARE" --seed 0 --backbone "$WORK/backbone/backbone.ckpt" \
  "${CROPS[@]}" --out "$OUT/encoder.onnx" --store-out "$OUT/store.new"
rm -rf "$OUT/store" && mv "$OUT/store.new" "$OUT/store"
end=$(date +%s)
times >"$WORK/times.txt"  # a builtin redirected runs in this shell, which reaped the steps
echo "training procedure: $((end - start)) s wall; CPU user and system of the steps: $(tail -1 "$WORK/times.txt")"
