#!/usr/bin/env bash
# Zero heap allocations per inference in steady state. Method: a malloc/calloc/realloc/memalign
# counting interposer (Tests/support/malloc_count.c, LD_PRELOAD) exports a counter; `beanctl model run
# --repeat-runs N` warms the session up, reads the counter, runs N more inferences of the same batch
# and prints the difference, which must be 0. Models: ResNet-18 (dynamo pattern, batch 4) and the
# conv autoencoder, so conv/pool/gemm/reduce/convTranspose/resize paths are all covered.
set -uo pipefail
# The packed small-product GEMM path too (debug builds default to OpenBLAS; see PackedGemm.level).
export BEAND_NET_GEMM="${BEAND_NET_GEMM:-avx512}"
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
command -v cc >/dev/null || { echo "skip: no C compiler for the malloc interposer"; exit 77; }
"$PY" -c "import onnx, numpy" 2>/dev/null || { echo "skip: $PY lacks onnx/numpy"; exit 77; }
[ -x "$BIN/beanctl" ] || { echo "FAIL: $BIN/beanctl not built"; exit 1; }
WORK=$(mktemp -d /tmp/beand-alloc.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cc -shared -fPIC -O2 -o "$WORK/malloc_count.so" "$ROOT/Tests/support/malloc_count.c" || exit 1
"$PY" - "$ROOT" "$WORK" <<'PYEOF' || exit 1
import sys
import numpy as np, onnx
sys.path.insert(0, sys.argv[1] + "/Tests/oracles")
import onnx_models as M
w = sys.argv[2]
onnx.save(M.resnet18(4, "dynamo"), w + "/resnet.onnx")
onnx.save(M.autoencoder(3), w + "/ae.onnx")
b = M.Builder(5)
y = b.node("Resize", [b.node("MaxPool", [b.conv("input", 3, 8, 3, 1, 1)], kernel_shape=[2, 2], strides=[2, 2]), "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest")
y = b.node("Pad", [b.node("Concat", [y, y], axis=1), b.const(np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], mode="reflect")
onnx.save(b.model("input", ["batch", 3, 16, 16], b.node("LpNormalization", [b.node("Flatten", [y])], axis=1)), w + "/misc.onnx")
rng = np.random.default_rng(0)
np.save(w + "/resnet.npy", rng.standard_normal((4, 3, 64, 64)).astype(np.float32))
np.save(w + "/ae.npy", rng.standard_normal((4, 3, 32, 32)).astype(np.float32))
np.save(w + "/misc.npy", rng.standard_normal((4, 3, 16, 16)).astype(np.float32))
PYEOF
fail=0
for m in resnet ae misc; do
  line=$(LD_PRELOAD="$WORK/malloc_count.so" "$BIN/beanctl" model run "$WORK/$m.onnx" --input "$WORK/$m.npy" --output "$WORK/$m.out.npy" --repeat-runs 20 | grep '^allocations')
  echo "$m: $line"
  case "$line" in
    *"runs of batch 4: 0") ;;
    *) fail=1 ;;
  esac
done
[ $fail -eq 0 ] && echo "pass: no allocations in steady-state inference" || echo "FAIL: allocations during inference"
exit $fail
