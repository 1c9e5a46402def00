#!/usr/bin/env bash
# beanctl eval throughput on the real Mindforge photos (skipped when ../shared/data/mindforge is
# absent): decode + segment + crop on 2 threads, raw-pixel embedding, then 5 bean-disjoint folds
# from the embeddings, on a seeded subset of beans. Prints photos/s and the time the whole folder
# (7,656 photos, 7,256 of them usable) would take, against the issue's "a few minutes" read as a 5-minute target; then
# the same subset again from the embeddings cache (the folds and metrics alone).
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
DATA="$ROOT/../shared/data/mindforge"
BEANS="${BENCH_EVAL_BEANS:-1000}"
if [ ! -x "$BIN/beanctl" ]; then
  echo "bench-eval: $BIN/beanctl missing (run: swift build -c release --product beanctl)" >&2
  exit 1
fi
if [ ! -d "$DATA" ]; then
  echo "bench-eval: SKIP, $DATA absent"
  exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
args=(--tree "$DATA" --preset mindforge --folds 5 --labels-per-fold 200 --encoder raw:16 --limit-beans "$BEANS"
      --threads 2 --quiet --json --cache "$tmp/cache.npy")
start=$(date +%s.%N)
"$BIN/beanctl" eval "${args[@]}" >"$tmp/first.json"
mid=$(date +%s.%N)
"$BIN/beanctl" eval "${args[@]}" >"$tmp/second.json"
end=$(date +%s.%N)
# Photos decoded and segmented: all of the subset's photos but the sides marked as not showing
# the bean's class, which eval leaves out before cropping.
all=$(sed -E 's/.*"photos":([0-9]+).*/\1/' "$tmp/first.json")
unmarked=$(sed -E 's/.*"side_not_showing_label":([0-9]+).*/\1/' "$tmp/first.json")
photos=$((all - unmarked))
awk -v a="$start" -v b="$mid" -v c="$end" -v n="$photos" 'BEGIN {
  t = b - a; rate = n / t; full = 7256 / rate
  printf "beanctl eval (cold)  : %d photos in %.1f s = %.1f photos/s (2 threads)\n", n, t, rate
  printf "whole folder (7,256) : %.0f s projected; ratio to the 300 s target %.2f (below 1 is faster)\n", full, full / 300
  printf "from the cache       : %.1f s (5 folds, search, metrics)\n", c - b
}'
