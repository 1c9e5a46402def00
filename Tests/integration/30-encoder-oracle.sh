#!/usr/bin/env bash
# Encoder runtime vs onnxruntime: ResNet-18 (both PyTorch exporter patterns), MobileNet-style block,
# conv autoencoder (20 random inputs each) and one model per operator/attribute combination; max abs
# error ≤ 1e-4. Also checks that unsupported/corrupt models are refused with the exact reason.
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
"$PY" "$ROOT/Tests/oracles/run_oracle.py" "$BIN/beanctl" "$WORK"
