#!/usr/bin/env bash
# Encoder runtime vs onnxruntime on the same ResNet-18 (128-d) ONNX file, same machine, same run:
# inputs 64×64 and 96×96, batch 1/8/32, 1 and 2 cores (taskset). Ours: N workers (N = cores), one
# BLAS thread each; onnxruntime: intra-op threads = cores. Prints images/s, the ratio, and our
# GFLOP/s as a fraction of the sgemm peak measured in the same run (same thread count), and the
# ratio of images per CPU-second (whole process, all threads), which moves less with the load of
# other processes on the machine than the wall-clock ratio.
# Env: SIZES, BATCHES, CORES to narrow the grid; ENCODER_ONNX to use another file.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
SIZES="${SIZES:-64 96}"; BATCHES="${BATCHES:-1 8 32}"; CORES="${CORES:-1 2}"
[ -x "$BIN/beanctl" ] || { echo "bench-encoder: $BIN/beanctl missing (swift build -c release)"; exit 1; }
"$PY" -c "import onnxruntime" 2>/dev/null || { echo "bench-encoder: onnxruntime missing in $PY (./Deploy/install-deps.sh)"; exit 1; }
WORK=$(mktemp -d /tmp/beand-bench-encoder.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
MODEL="${ENCODER_ONNX:-$WORK/resnet18-128.onnx}"
[ -f "$MODEL" ] || "$PY" "$ROOT/Benchmarks/encoder_peer.py" make "$MODEL"
# The release build takes SIMD paths the debug test run does not: check it against onnxruntime first.
if ! check=$("$PY" "$ROOT/Tests/oracles/run_oracle.py" "$BIN/beanctl" "$WORK/oracle" --only resnet18,winograd,conv_k3,torch_smallresnet); then
  echo "$check"; echo "bench-encoder: release beanctl disagrees with onnxruntime"; exit 1
fi
echo "release build vs onnxruntime: $(echo "$check" | tail -1)"
ncpu=$(nproc)
printf '%-5s %-5s %-5s %10s %10s %7s %9s %9s %8s\n' size batch cores "ours img/s" "ort img/s" ratio "GFLOP/s" "of peak" "cpu ratio"
for size in $SIZES; do
  for batch in $BATCHES; do
    for cores in $CORES; do
      [ "$cores" -le "$ncpu" ] || continue
      cpus=$(seq -s, 0 $((cores - 1)))
      ours=$(taskset -c "$cpus" "$BIN/beanctl" bench encoder "$MODEL" --size "$size" --batch "$batch" --workers "$cores" --json) || { echo "beanctl failed"; exit 1; }
      peer=$(taskset -c "$cpus" "$PY" "$ROOT/Benchmarks/encoder_peer.py" ort "$MODEL" "$size" "$batch" "$cores") || { echo "onnxruntime failed"; exit 1; }
      "$PY" - "$size" "$batch" "$cores" "$ours" "$peer" <<'PYEOF'
import json, sys
size, batch, cores = sys.argv[1:4]
o, p = json.loads(sys.argv[4]), json.loads(sys.argv[5])
print(f"{size:<5} {batch:<5} {cores:<5} {o['images_per_s']:10.1f} {p['images_per_s']:10.1f} {o['images_per_s'] / p['images_per_s']:6.2f}x"
      f" {o['gflops']:9.1f} {100 * o['peak_fraction']:8.0f}% {o['images_per_cpu_s'] / p['images_per_cpu_s']:8.2f}x"
      f"  (sgemm peak {o['sgemm_peak_gflops']:.0f}; img per CPU-s {o['images_per_cpu_s']:.1f} vs {p['images_per_cpu_s']:.1f})")
PYEOF
    done
  done
done
