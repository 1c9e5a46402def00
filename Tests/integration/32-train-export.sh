#!/usr/bin/env bash
# Networks trained and exported by BeanNet's training code load in onnxruntime with the outputs
# of the training forward (max abs error ≤ 1e-4); the Swift suite that writes them has already
# matched the project's runtime (EncoderModel) against the same outputs.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
export PATH="/opt/swift/usr/bin:$PATH"
if [ ! -x "$PY" ] || ! "$PY" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  echo "skip: $PY lacks onnx/onnxruntime/numpy (run ./Deploy/install-deps.sh)"; exit 77
fi
WORK=$(mktemp -d /tmp/beand-train-export.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$ROOT" || exit 1
# The test bundle is built by Tests/run-all.sh (swift build --build-tests) before this script runs.
if ! BEAND_TRAIN_EXPORT_DIR="$WORK" swift test --skip-build --filter "TrainingExportTests|PatchNoveltyTests" >"$WORK/swift-test.log" 2>&1; then
  echo "FAIL: swift test --filter TrainingExportTests|PatchNoveltyTests (is the test bundle built?)"; tail -n 20 "$WORK/swift-test.log"; exit 1
fi
"$PY" "$ROOT/Tests/oracles/check_train_export.py" "$WORK"
