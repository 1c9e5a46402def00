#!/usr/bin/env bash
# Runs every benchmark (Benchmarks/bench-*) against release binaries; each prints its figures and
# the ratio to its named peer measured in the same run.
set -uo pipefail
cd "$(dirname "$0")/.."
export BEAND_ROOT="$PWD" BEAND_BIN="$PWD/.build/release" BEAND_PY="$PWD/.venv/bin/python"
rc=0
for b in Benchmarks/bench-*; do
  [ -x "$b" ] || continue
  echo "== $(basename "$b")  ($(date -u +%FT%TZ), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs))"
  "$b" || rc=1
done
exit $rc
