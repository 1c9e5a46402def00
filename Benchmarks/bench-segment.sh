#!/usr/bin/env bash
# Segmentation + tracking speed: a synthetic 1280x720 belt frame with ~40 beans, one thread,
# against the 200 frames/s target; the OpenCV peer (threshold + opening + connected components on
# the same frame, one thread) runs in the same session when the venv has opencv-python-headless.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/release}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
FRAMES="${BENCH_SEGMENT_FRAMES:-2000}"
if [ ! -x "$BIN/beanctl" ]; then
  echo "bench-segment: $BIN/beanctl missing (run: swift build -c release --product beanctl)" >&2
  exit 1
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

beand=$("$BIN/beanctl" bench segment --frames "$FRAMES" --json --write-frame "$tmp/frame.png")
fps=$(sed -E 's/.*"fps":([0-9.]+).*/\1/' <<<"$beand")
echo "beand segment+track : $beand"
awk -v f="$fps" 'BEGIN { printf "beand               : %.1f frames/s, ratio to the 200 frames/s target %.2f\n", f, f / 200 }'

if [ -x "$PY" ] && "$PY" -c 'import cv2' 2>/dev/null; then
  peer=$("$PY" "$ROOT/Benchmarks/opencv_segment_peer.py" "$tmp/frame.png" "$((FRAMES / 4))" 196,200,194 40)
  peer_fps=$(sed -E 's/.*"fps": ([0-9.]+).*/\1/' <<<"$peer")
  echo "opencv peer         : $peer"
  awk -v f="$fps" -v p="$peer_fps" 'BEGIN { printf "ratio beand/opencv  : %.2f (opencv does no split and no tracking)\n", f / p }'
else
  echo "opencv peer         : not run ($PY has no cv2; Deploy/install-deps.sh installs opencv-python-headless)"
fi
