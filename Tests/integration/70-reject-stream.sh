#!/usr/bin/env bash
# Reject stream (beand-rejects(7)) seen from outside the daemon process: Python consumers against a
# real RejectStreamServer run by the Swift test RejectStreamDriver (the pipeline that feeds the
# stream in beand is wired separately). Checks: many consumers get every event once and in order;
# a consumer killed with SIGKILL mid-stream resumes with resume_after and misses no sequence
# number; a consumer that never reads gets an overflow gap and the others are unaffected; the
# event schema; sequence numbers continue across a restart; garbage gets an error line.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
cd "$ROOT"
export PATH="/opt/swift/usr/bin:$PATH"
PY="${BEAND_PY:-}"
[ -x "$PY" ] || PY="$(command -v python3 || true)"
if [ -z "$PY" ]; then echo "SKIP: no python3 (BEAND_PY or python3)"; exit 77; fi
if [ ! -e .build/debug/beandPackageTests.xctest ]; then
  echo "SKIP: test bundle not built (run swift build --build-tests first)"; exit 77
fi

WORK="$(mktemp -d /tmp/beand-rejects-XXXXXX)"
DRIVER_PID=""
cleanup() {
  [ -n "$DRIVER_PID" ] && kill "$DRIVER_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

BEAND_REJECTS_DRIVER_DIR="$WORK" swift test --skip-build --filter 'RejectStreamDriver' \
  >"$WORK/driver.log" 2>&1 &
DRIVER_PID=$!

"$PY" "$ROOT/Tests/integration/70-reject-stream.py" "$WORK"
rc=$?

for _ in $(seq 1 100); do kill -0 "$DRIVER_PID" 2>/dev/null || break; sleep 0.1; done
if kill -0 "$DRIVER_PID" 2>/dev/null; then
  echo "FAIL driver did not exit"; rc=1
else
  wait "$DRIVER_PID"; drc=$?
  DRIVER_PID=""
  if [ "$drc" -ne 0 ]; then echo "FAIL driver exited $drc"; rc=1; fi
fi
if [ "$rc" -ne 0 ]; then echo "--- driver log (tail)"; tail -n 30 "$WORK/driver.log"; fi
exit "$rc"
