#!/usr/bin/env bash
# The whole test suite: Swift unit tests, then every integration script in Tests/integration
# (each an executable that exits 0 on pass, 77 on a clearly reported skip, anything else on failure).
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
export BEAND_ROOT="$PWD"
export BEAND_BIN="$PWD/.build/debug"
export BEAND_PY="$PWD/.venv/bin/python"

passed=0; failed=0; skipped=0; failures=()

echo "== swift build"
if ! swift build --build-tests 2>&1 | tail -n 30; then :; fi
if [ "${PIPESTATUS[0]}" -ne 0 ]; then echo "swift build failed"; echo "0 passed, 1 failed"; exit 1; fi

echo "== swift test"
# OpenBLAS keeps its default thread count here: no library code changes it (beand and beanctl
# set it at start-up), so tests running in parallel cannot change each other's arithmetic.
swift test --skip-build --parallel 2>&1 | tee /tmp/beand-swift-test.log | tail -n 40
if [ "${PIPESTATUS[0]}" -eq 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); failures+=("swift test"); fi

for t in Tests/integration/*; do
  [ -x "$t" ] || continue
  name=$(basename "$t")
  echo "== $name"
  start=$(date +%s)
  "$t"; rc=$?
  echo "   ($name: rc=$rc, $(( $(date +%s) - start ))s)"
  case $rc in
    0) passed=$((passed+1));;
    77) skipped=$((skipped+1));;
    *) failed=$((failed+1)); failures+=("$name");;
  esac
done

((${#failures[@]})) && printf 'FAILED: %s\n' "${failures[@]}"
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
[ "$failed" -eq 0 ]
