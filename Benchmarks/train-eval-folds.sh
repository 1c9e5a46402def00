#!/usr/bin/env bash
# The issue's quality table: bean-disjoint 5-fold cross-validation on the Mindforge photos with
# beanctl eval's fold mode, for 50/200/500 labelled beans:
#   raw pixels (eval --encoder raw), backbone without head, full method (a head trained per fold on
#   that fold's training beans only, evaluated on that fold), and one-class (full method's encoder,
#   store of good beans only).
# The head of fold i is trained on exactly the labelled beans eval's fold i puts in its store
# (same BeanFolds seed and subset rule), so fold i's test beans were never trained on. Eval runs
# each fold-i encoder over all folds; only fold i's figures count (per_fold[i] of its JSON, and its
# per-bean scores pooled over the five runs).
#   BACKBONE  checkpoint (default: $WORK/backbone/backbone.ckpt of Deploy/train-default.sh)
#   LABEL_COUNTS (default "50 200 500")   FOLDS (default 5)   SEED (default 0)
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
DATA="${DATA:-$ROOT/../shared/data/mindforge}"
WORK="${WORK:-/tmp/beand-train-default}"
BACKBONE="${BACKBONE:-$WORK/backbone/backbone.ckpt}"
LABEL_COUNTS="${LABEL_COUNTS:-50 200 500}"
FOLDS="${FOLDS:-5}"
SEED="${SEED:-0}"
HEAD_ARGS="${HEAD_ARGS:-}"
[ -d "$DATA" ] || { echo "skip: no photos at $DATA"; exit 77; }
[ -f "$BACKBONE" ] || { echo "no backbone checkpoint at $BACKBONE: run Deploy/train-default.sh first" >&2; exit 1; }
CROPS=(--preset mindforge --crop-cache "$WORK/crops.cache")
OUTDIR="$WORK/folds"
mkdir -p "$OUTDIR"
# Eval reads a tree of the daemon's crops (beanctl train crops), so it does not segment 7,656
# photos once per run; photos without a crop stay linked, so the beans and folds are the same.
if [ ! -d "$WORK/croptree" ]; then
  "$BIN/beanctl" train crops --tree "$DATA" "${CROPS[@]}" --out "$WORK/croptree" >&2
fi
EVAL=("$BIN/beanctl" eval --tree "$WORK/croptree" --folds "$FOLDS" --seed "$SEED" --preset mindforge --json --quiet)
backbone_onnx="$(dirname "$BACKBONE")/backbone.onnx"

summary() {  # name json-files… → one table row from eval's per_fold entries (fold i of file i)
  local name=$1; shift
  "$PY" - "$name" "$@" <<'PYEOF'
import json, sys
name, files = sys.argv[1], sys.argv[2:]
rows = []
for i, f in enumerate(files):
    d = json.load(open(f))
    per = d["folds"]["per_fold"]
    entry = per[i] if len(files) > 1 else None
    if entry is None:
        rows.append((d["roc_auc"], d["recall_at_good_rejected"]["0.01"], d["recall_at_good_rejected"]["0.03"],
                     d["recall_at_good_rejected"]["0.05"], d["f1"], d.get("macro_f1")))
        break
    rows.append((entry["roc_auc"], entry["recall_at_good_rejected"]["0.01"], entry["recall_at_good_rejected"]["0.03"],
                 entry["recall_at_good_rejected"]["0.05"], entry["f1"], None))
mean = lambda k: sum(r[k] for r in rows) / len(rows)
spread = lambda k: (min(r[k] for r in rows), max(r[k] for r in rows))
mf1 = rows[0][5]
print(f"| {name} | {mean(0):.3f} ({spread(0)[0]:.3f}–{spread(0)[1]:.3f}) | {mean(1)*100:.0f} % | {mean(2)*100:.0f} % ({spread(2)[0]*100:.0f}–{spread(2)[1]*100:.0f}) | {mean(3)*100:.0f} % | {mean(4):.3f} | "
      + (f"{mf1:.3f}" if mf1 is not None else "–") + " |")
PYEOF
}

echo "| method | ROC AUC mean (fold min–max) | recall @1 % good rejected | @3 % (min–max) | @5 % | F1 (policy threshold) | macro F1 (pooled) |"
echo "|---|---|---|---|---|---|---|"
for N in $LABEL_COUNTS; do
  "${EVAL[@]}" --labels-per-fold "$N" --encoder raw >"$OUTDIR/raw-$N.json"
  summary "raw pixels 16×16, $N labels" "$OUTDIR/raw-$N.json"
  "${EVAL[@]}" --labels-per-fold "$N" --encoder "$backbone_onnx" >"$OUTDIR/backbone-$N.json"
  summary "backbone without head, $N labels" "$OUTDIR/backbone-$N.json"
  files=(); oneclass=()
  for ((f = 0; f < FOLDS; f++)); do
    enc="$OUTDIR/encoder-$N-fold$f.onnx"
    "$BIN/beanctl" train head --tree "$DATA" --labels "$N" --folds "$FOLDS" --fold "$f" --seed "$SEED" \
      --backbone "$BACKBONE" "${CROPS[@]}" --out "$enc" $HEAD_ARGS >"$OUTDIR/head-$N-fold$f.txt" 2>"$OUTDIR/head-$N-fold$f.err"
    "${EVAL[@]}" --labels-per-fold "$N" --encoder "$enc" >"$OUTDIR/full-$N-fold$f.json"
    "${EVAL[@]}" --labels-per-fold "$N" --encoder "$enc" --one-class >"$OUTDIR/oneclass-$N-fold$f.json"
    files+=("$OUTDIR/full-$N-fold$f.json"); oneclass+=("$OUTDIR/oneclass-$N-fold$f.json")
  done
  summary "full method (head per fold), $N labels" "${files[@]}"
  summary "one-class (full method's encoder, good beans only), $N labels" "${oneclass[@]}"
done
