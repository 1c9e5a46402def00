#!/usr/bin/env bash
# Training-step speed of BeanNet's training engine (forward + backward + Adam, batch-hard triplet
# loss) on the ResNet-like encoder at 64×64, 2 BLAS threads. Peers in the same run: PyTorch CPU on
# the same network, loss, optimiser and batch (when a Python with torch is given in BENCH_TORCH_PY
# or the venv has it), the project's inference runtime on the exported network, and the sgemm peak.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
PY="${BENCH_TORCH_PY:-${BEAND_PY:-$ROOT/.venv/bin/python}}"
SIZE="${BENCH_TRAIN_SIZE:-64}" BATCH="${BENCH_TRAIN_BATCH:-32}" THREADS="${BENCH_TRAIN_THREADS:-2}"
WIDTHS="${BENCH_TRAIN_WIDTHS:-16,32,64,128}" BLOCKS="${BENCH_TRAIN_BLOCKS:-1,1,1,1}" SECONDS_EACH="${BENCH_TRAIN_SECONDS:-5}"
if [ ! -x "$BIN/beanctl" ]; then
  echo "bench-train: $BIN/beanctl missing (run: swift build -c release --product beanctl)" >&2
  exit 1
fi
"$BIN/beanctl" bench train --size "$SIZE" --batch "$BATCH" --threads "$THREADS" --widths "$WIDTHS" \
  --blocks "$BLOCKS" --seconds "$SECONDS_EACH"
ours=$("$BIN/beanctl" bench train --size "$SIZE" --batch "$BATCH" --threads "$THREADS" --widths "$WIDTHS" \
  --blocks "$BLOCKS" --seconds "$SECONDS_EACH" --json)
echo "beand train      : $ours"
if [ -x "$PY" ] && "$PY" -c 'import torch' 2>/dev/null; then
  peer=$("$PY" "$ROOT/Benchmarks/train_peer.py" "$SIZE" "$BATCH" "$WIDTHS" "$BLOCKS" 128 "$THREADS" "$SECONDS_EACH")
  echo "pytorch peer     : $peer"
  "$PY" - "$ours" "$peer" <<'PYEOF'
import json, sys
ours, peer = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("ratio beand/torch: training step %.2f× (%.1f vs %.1f images/s), inference forward %.2f× (%.1f vs %.1f)" % (
    ours["train_images_per_s"] / peer["train_images_per_s"], ours["train_images_per_s"], peer["train_images_per_s"],
    ours["forward_images_per_s"] / peer["forward_images_per_s"], ours["forward_images_per_s"], peer["forward_images_per_s"]))
PYEOF
else
  echo "pytorch peer     : not run ($PY has no torch; set BENCH_TORCH_PY to a Python with torch)"
fi
