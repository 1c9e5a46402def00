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
#   CROP_SIZE  crop side, as the backbone was trained with (default 64; Deploy/train-default.sh)
#   LABEL_COUNTS (default "50 200 500")   FOLDS (default 5)   SEED (default 0)
#   GOOD_SHARE (default 0.5, as Deploy/train-default.sh; or "proportional"): share of good beans
#   among each fold's labelled beans, for every row (eval and train head --good-share).
#   SUPERVISED_BACKBONE  set to 1: pre-train a backbone per fold and label count, with that fold's
#   labelled beans added to the contrastive task (train backbone --labelled-tree … --fold i), and
#   put the heads of fold i on it (BACKBONE then unused). BACKBONE_ARGS: its other options
#   (default "--epochs 4 --zoom 0.5 --seed 1"). A fold's backbone is kept in $WORK/folds and
#   reused when its backbone.onnx exists. The backbone row then is per fold too.
#   EVAL_ARGS: more options for every eval run (e.g. "--mode vote" for the vote's figures).
#   ROWS (default "raw backbone full one-class"): which rows to measure; e.g. MODEL_CARD.md's
#   label-scaling rows are LABEL_COUNTS="1000 3000" ROWS=full (with GOOD_SHARE=proportional for
#   its "How far labels take this trunk" table).
# Below the table: for the full method, the daemon's default policy's defect recall and share of
# good beans rejected (fold i's beans in eval's --scores CSV of encoder i, mean over folds), and
# the defect recall of the daemon's policy (score mode over 64 neighbours unless EVAL_ARGS says
# otherwise, e.g. "--mode vote") at 1, 3 and 5 % of good beans rejected with the reject share
# that gives it (eval's reject_share_at_good_rejected).
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
DATA="${DATA:-$ROOT/../shared/data/mindforge}"
DATA="$(cd "$DATA" 2>/dev/null && pwd -P || echo "$DATA")"  # the crop cache is keyed by the path
WORK="${WORK:-/tmp/beand-train-default}"
BACKBONE="${BACKBONE:-$WORK/backbone/backbone.ckpt}"
LABEL_COUNTS="${LABEL_COUNTS:-50 200 500}"
FOLDS="${FOLDS:-5}"
SEED="${SEED:-0}"
HEAD_ARGS="${HEAD_ARGS:-}"
SHARE=(--good-share "${GOOD_SHARE:-0.5}")
ROWS=" ${ROWS:-raw backbone full one-class} "
for row in $ROWS; do
  case $row in raw|backbone|full|one-class) ;; *) echo "ROWS: unknown row '$row' (raw, backbone, full, one-class)" >&2; exit 2 ;; esac
done
wants() { [[ $ROWS == *" $1 "* ]]; }
[ -d "$DATA" ] || { echo "skip: no photos at $DATA"; exit 77; }
PER_FOLD="${SUPERVISED_BACKBONE:-0}"
case $PER_FOLD in 0|1) ;; *) echo "SUPERVISED_BACKBONE: 0 or 1, got '$PER_FOLD'" >&2; exit 2 ;; esac
if [ "$PER_FOLD" = 0 ]; then
  [ -f "$BACKBONE" ] || { echo "no backbone checkpoint at $BACKBONE: run Deploy/train-default.sh first" >&2; exit 1; }
fi
CROPS=(--preset mindforge --crop-cache "$WORK/crops.cache" --crop-size "${CROP_SIZE:-64}")
OUTDIR="$WORK/folds"
mkdir -p "$OUTDIR"
# Eval reads a tree of the daemon's crops (beanctl train crops), so it does not segment 7,656
# photos once per run; photos without a crop stay linked, so the beans and folds are the same.
if [ ! -d "$WORK/croptree" ]; then
  "$BIN/beanctl" train crops --tree "$DATA" "${CROPS[@]}" --out "$WORK/croptree" >&2
fi
# shellcheck disable=SC2206  # EVAL_ARGS is a list of options
EVAL=("$BIN/beanctl" eval --tree "$WORK/croptree" --folds "$FOLDS" --seed "$SEED" --preset mindforge --json --quiet "${SHARE[@]}" ${EVAL_ARGS:-})
backbone_onnx="$(dirname "$BACKBONE")/backbone.onnx"

summary() {  # name json-files… → one table row: fold i's figures of file i (or one file's pooled figures)
  local name=$1; shift
  "$PY" - "$name" "$@" <<'PYEOF'
import json, sys
name, files = sys.argv[1], sys.argv[2:]
def figures(e):
    r = e["recall_at_good_rejected"]
    return (e["roc_auc"], r["0.01"], r["0.03"], r["0.05"], e["f1"])
docs = [json.load(open(f)) for f in files]
if len(docs) == 1:  # one encoder for all folds: eval's pooled figures, per-fold spread
    d = docs[0]
    pooled, per = figures(d), [figures(e) for e in d["folds"]["per_fold"]]
    mf1 = f"{d['macro_f1']:.3f}"
else:  # encoder i for fold i: mean over folds of fold i's figures
    per = [figures(d["folds"]["per_fold"][i]) for i, d in enumerate(docs)]
    pooled = tuple(sum(p[k] for p in per) / len(per) for k in range(5))
    fold_mf1 = [d["folds"]["per_fold"][i].get("macro_f1") for i, d in enumerate(docs)]
    mf1 = "–" if None in fold_mf1 else f"{sum(fold_mf1) / len(fold_mf1):.3f}"
lo = lambda k: min(p[k] for p in per); hi = lambda k: max(p[k] for p in per)
print(f"| {name} | {pooled[0]:.3f} ({lo(0):.3f}–{hi(0):.3f}) | {pooled[1]*100:.0f} % | {pooled[2]*100:.0f} % ({lo(2)*100:.0f}–{hi(2)*100:.0f}) "
      f"| {pooled[3]*100:.0f} % | {pooled[4]:.3f} | {mf1} |")
PYEOF
}

policy_figures() {  # labels csv-files… → two lines: the policy's defect recall and good beans rejected
  "$PY" - "$@" <<'PYEOF'
import csv, json, sys
n, files = sys.argv[1], sys.argv[2:]
recall, good = [], []
for fold, path in enumerate(files):
    rows = [r for r in csv.DictReader(open(path)) if int(r["fold"]) == fold]
    defect = [r["rejected"] == "1" for r in rows if r["defect"] == "1"]
    sound = [r["rejected"] == "1" for r in rows if r["defect"] == "0"]
    recall.append(sum(defect) / len(defect)); good.append(sum(sound) / len(sound))
print(f"full method, {n} labels, the daemon's policy: defect recall {100 * sum(recall) / len(recall):.0f} %, "
      f"good beans rejected {100 * sum(good) / len(good):.0f} % (mean over folds)")
# The same policy at a chosen share of good beans rejected (eval's reject_share_at_good_rejected,
# fold i's figures from the JSON beside the CSV): defect recall, and the reject share giving it.
parts = []
for key in ("0.01", "0.03", "0.05"):
    at = [json.load(open(path[:-4] + ".json"))["folds"]["per_fold"][fold]["reject_share_at_good_rejected"][key]
          for fold, path in enumerate(files)]
    if any(a is None or a["reject_share"] is None for a in at):
        parts.append(f"{float(key) * 100:.0f} %: not reachable on every fold")
        continue
    parts.append(f"{float(key) * 100:.0f} %: defect recall {100 * sum(a['recall'] for a in at) / len(at):.0f} % "
                 f"(reject share {min(a['reject_share'] for a in at):.3f}–{max(a['reject_share'] for a in at):.3f})")
print(f"full method, {n} labels, the daemon's policy at a share of good beans rejected: " + "; ".join(parts))
PYEOF
}
policy_lines=()

echo "| method | ROC AUC (fold min–max) | recall @1 % good rejected | @3 % (fold min–max) | @5 % | F1 (policy threshold) | macro F1 (eval: pooled; head per fold: mean of fold i) |"
echo "|---|---|---|---|---|---|---|"
for N in $LABEL_COUNTS; do
  if wants raw; then
    "${EVAL[@]}" --labels-per-fold "$N" --encoder raw >"$OUTDIR/raw-$N.json"
    summary "raw pixels 16×16, $N labels" "$OUTDIR/raw-$N.json"
  fi
  if wants backbone && [ "$PER_FOLD" = 0 ]; then
    "${EVAL[@]}" --labels-per-fold "$N" --encoder "$backbone_onnx" >"$OUTDIR/backbone-$N.json"
    summary "backbone without head, $N labels" "$OUTDIR/backbone-$N.json"
  fi
  if [ "$PER_FOLD" = 1 ]; then
    trunks=()
    for ((f = 0; f < FOLDS; f++)); do
      dir="$OUTDIR/backbone-$N-fold$f"
      if [ ! -f "$dir/backbone.onnx" ]; then
        # shellcheck disable=SC2086  # BACKBONE_ARGS is a list of options
        "$BIN/beanctl" train backbone --crops "$DATA" "${CROPS[@]}" --out "$dir" --labelled-tree "$DATA" --labels "$N" \
          --folds "$FOLDS" --fold "$f" --label-seed "$SEED" "${SHARE[@]}" ${BACKBONE_ARGS:---epochs 4 --zoom 0.5 --seed 1} \
          >"$dir.txt" 2>"$dir.err"
      fi
      trunks+=("$dir/backbone.onnx")
    done
    if wants backbone; then
      files=()
      for ((f = 0; f < FOLDS; f++)); do
        "${EVAL[@]}" --labels-per-fold "$N" --encoder "${trunks[$f]}" >"$OUTDIR/backbone-$N-fold$f.json"
        files+=("$OUTDIR/backbone-$N-fold$f.json")
      done
      summary "backbone without head (pre-trained per fold with its labelled beans), $N labels" "${files[@]}"
    fi
  fi
  wants full || wants one-class || continue
  files=(); oneclass=(); csvs=()
  for ((f = 0; f < FOLDS; f++)); do
    enc="$OUTDIR/encoder-$N-fold$f.onnx"
    trunk="$BACKBONE"
    [ "$PER_FOLD" = 1 ] && trunk="$OUTDIR/backbone-$N-fold$f/backbone.ckpt"
    "$BIN/beanctl" train head --tree "$DATA" --labels "$N" --folds "$FOLDS" --fold "$f" --seed "$SEED" "${SHARE[@]}" \
      --backbone "$trunk" "${CROPS[@]}" --out "$enc" $HEAD_ARGS >"$OUTDIR/head-$N-fold$f.txt" 2>"$OUTDIR/head-$N-fold$f.err"
    if wants full; then
      "${EVAL[@]}" --labels-per-fold "$N" --encoder "$enc" --scores "$OUTDIR/full-$N-fold$f.csv" >"$OUTDIR/full-$N-fold$f.json"
      files+=("$OUTDIR/full-$N-fold$f.json"); csvs+=("$OUTDIR/full-$N-fold$f.csv")
    fi
    if wants one-class; then
      "${EVAL[@]}" --labels-per-fold "$N" --encoder "$enc" --one-class >"$OUTDIR/oneclass-$N-fold$f.json"
      oneclass+=("$OUTDIR/oneclass-$N-fold$f.json")
    fi
  done
  if wants full; then summary "full method (head per fold), $N labels" "${files[@]}"; fi
  if wants one-class; then summary "one-class (full method's encoder, good beans only), $N labels" "${oneclass[@]}"; fi
  if wants full; then policy_lines+=("$(policy_figures "$N" "${csvs[@]}")"); fi
done
# What the daemon itself would do with the full method: its default policy's verdicts (eval's
# --scores CSV, fold i's beans with encoder i), as defect recall and share of good beans rejected.
for line in "${policy_lines[@]}"; do echo "$line"; done
