#!/usr/bin/env bash
# Encoder runtime vs onnxruntime: ResNet-18 (both PyTorch exporter patterns), MobileNet-style block,
# conv autoencoder (20 random inputs each) and one model per operator/attribute combination; max abs
# error ≤ 1e-4; PyTorch-exported files (Tests/fixtures/torch) and batch-1 runs; the networks once more
# with BEAND_NET_GEMM=avx512, avx2 and blas. Also checks that unsupported/corrupt models are refused with the exact reason.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ] || ! "$PY" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  echo "skip: $PY lacks onnx/onnxruntime/numpy (run ./Deploy/install-deps.sh)"; exit 77
fi
if [ ! -x "$BIN/beanctl" ]; then echo "FAIL: $BIN/beanctl not built"; exit 1; fi
WORK=$(mktemp -d /tmp/beand-oracle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
"$PY" "$ROOT/Tests/oracles/run_oracle.py" "$BIN/beanctl" "$WORK" || exit 1
# The networks again with each small-product GEMM path forced: AVX-512 and AVX2 (capped at what the
# CPU has) and plain OpenBLAS (the fallback on CPUs without AVX2+FMA, and the default of debug builds).
for gemm in avx512 avx2 blas; do
  echo "BEAND_NET_GEMM=$gemm:"
  BEAND_NET_GEMM=$gemm "$PY" "$ROOT/Tests/oracles/run_oracle.py" "$BIN/beanctl" "$WORK/$gemm" --only resnet18,torch_smallresnet,mobilenet || exit 1
done
