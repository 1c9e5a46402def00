#!/usr/bin/env bash
# Capture overhead per frame at 1280x720: YUYV→RGB24 natively vs libv4lconvert (the peer, ratio
# printed), the RGB24 row copy, and belt-simulator frame generation over a tray photo when
# ../shared/data is present (a generated pattern otherwise).
set -euo pipefail
ROOT=${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BEAND_BIN:-$ROOT/.build/release}
photo=()
tray="$ROOT/../shared/data/trays/Normales.jpg"
[ -f "$tray" ] || tray="/work/shared/data/trays/Normales.jpg"
if [ -f "$tray" ]; then photo=(--photo "$tray"); else echo "(no tray photos found: belt simulator uses a generated pattern)"; fi
"$BIN/beanctl" bench capture --width 1280 --height 720 --seconds "${BENCH_SECONDS:-2}" "${photo[@]}" "$@"
