#!/usr/bin/env bash
# OpenBLAS's kernels (BLASKernels, OPENBLAS_CORETYPE in beand(8)): when OpenBLAS does not recognise
# the CPU it falls back to its SSE3 (Prescott) kernels; beanctl switches to the kernels the CPU can
# run (SkylakeX, Haswell, Sandybridge), keeps a known CPU's choice and the operator's
# OPENBLAS_CORETYPE, and reports the kernels in `bench encoder`. The encoder runtime agrees with
# onnxruntime under the SSE kernels too (30-encoder-oracle runs it under the selected ones).
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ] || ! "$PY" -c "import onnx, onnxruntime, numpy" 2>/dev/null; then
  echo "skip: $PY lacks onnx/onnxruntime/numpy (run ./Deploy/install-deps.sh)"; exit 77
fi
if [ ! -x "$BIN/beanctl" ]; then echo "FAIL: $BIN/beanctl not built"; exit 1; fi
WORK=$(mktemp -d /tmp/beand-blas.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
failed=0
check() { if [ "$2" = "$3" ]; then echo "ok: $1 ($2)"; else echo "FAIL: $1: got '$2', expected '$3'"; failed=1; fi; }

flags=" $(grep -m1 '^flags' /proc/cpuinfo | cut -d: -f2) "
has() { [[ $flags == *" $1 "* ]]; }
cpu=0
has avx && cpu=1
has avx2 && has fma && cpu=2
has avx512f && has avx512cd && has avx512bw && has avx512dq && has avx512vl && cpu=3
level_of() {
  case "${1,,}" in
    skylakex|cooperlake|sapphirerapids) echo 3 ;;
    haswell|zen|excavator) echo 2 ;;
    sandybridge|bulldozer|piledriver|steamroller) echo 1 ;;
    *) echo 0 ;;
  esac
}
core_for=("" Sandybridge Haswell SkylakeX)
bench() { "$BIN/beanctl" bench encoder "$ROOT/Config/model/encoder.onnx" --seconds 0.2 --rounds 1 --json; }
json_core() { "$PY" -c 'import json, sys; print(json.loads(sys.stdin.read().strip().splitlines()[-1])["blas_core"])'; }

# OPENBLAS_VERBOSE=2 makes OpenBLAS print "Core: NAME" each time it selects kernels: first its own
# choice at load, then beanctl's switch, if any.
env -u OPENBLAS_CORETYPE OPENBLAS_VERBOSE=2 "$BIN/beanctl" bench encoder "$ROOT/Config/model/encoder.onnx" \
  --seconds 0.2 --rounds 1 --json >"$WORK/out" 2>"$WORK/err" || { echo "FAIL: bench encoder"; cat "$WORK/err"; exit 1; }
own=$(grep -m1 -o 'Core: [A-Za-z0-9]*' "$WORK/err" "$WORK/out" | head -1 | sed 's/.*Core: //')
core=$(json_core <"$WORK/out")
[ -n "$own" ] || { echo "FAIL: OpenBLAS printed no 'Core:' line with OPENBLAS_VERBOSE=2"; cat "$WORK/err"; exit 1; }
echo "CPU vector level $cpu; OpenBLAS chose $own at load; beanctl runs $core"
if [ "$(level_of "$own")" = 0 ] && [ "$cpu" -gt 0 ]; then
  check "SSE fallback replaced by the CPU's kernels" "$core" "${core_for[$cpu]}"
else
  check "OpenBLAS's choice for a known CPU kept" "$core" "$own"
fi
if [ "$cpu" -ge 2 ]; then
  check "no SSE kernels on an AVX2 CPU" "$([ "$(level_of "$core")" -ge 2 ] && echo yes || echo no)" yes
fi

# The operator's choice wins, and the environment is left as it was.
check "OPENBLAS_CORETYPE=Prescott kept" "$(OPENBLAS_CORETYPE=Prescott bench | json_core)" Prescott
if [ "$cpu" -ge 2 ]; then
  check "OPENBLAS_CORETYPE=Haswell kept" "$(OPENBLAS_CORETYPE=Haswell bench | json_core)" Haswell
fi

# The networks of the encoder oracle under the SSE kernels (OpenBLAS's fallback, and what an
# operator can force): same outputs as onnxruntime.
echo "OPENBLAS_CORETYPE=Prescott:"
OPENBLAS_CORETYPE=Prescott "$PY" "$ROOT/Tests/oracles/run_oracle.py" "$BIN/beanctl" "$WORK/prescott" \
  --only resnet18,torch_smallresnet,mobilenet || failed=1
[ $failed = 0 ] && echo "PASS" || { echo "FAIL"; exit 1; }
