#!/usr/bin/env bash
# The reject crop spool (issue 6): `beanctl bench spool` measures the decision thread's offer cost,
# the writer's crops/s (JPEG encode, eviction under the cap, temporary file, flush, rename; batches
# of up to 32 share their flushes) and JPEG encoding alone. Peer: the straightforward writer in
# Python/OpenCV (Benchmarks/spool_peer.py: encode, write, fdatasync, rename, one crop at a time),
# same crops, quality and cap, measured in the same run. Both write under /tmp, so the figures
# are this machine's disk; the ratio is beand's crops/s over the peer's.
set -euo pipefail
ROOT=${BEAND_ROOT:-$(cd "$(dirname "$0")/.." && pwd)}
BIN=${BEAND_BIN:-$ROOT/.build/release}
PY=${BEAND_PY:-$ROOT/.venv/bin/python}
CROPS=${SPOOL_CROPS:-3000}
SIZE=${SPOOL_SIZE:-64}
QUALITY=90
CAP=$((2 << 20))
echo "spool bench, $(date -u +%FT%TZ), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg), $CROPS crops of ${SIZE}x${SIZE}, quality $QUALITY, cap $CAP bytes"
beand=$("$BIN/beanctl" bench spool --crops "$CROPS" --size "$SIZE" --quality "$QUALITY" --max-bytes "$CAP" --json)
if [ -x "$PY" ] && "$PY" -c "import cv2, numpy" 2>/dev/null; then
  peer=$("$PY" "$ROOT/Benchmarks/spool_peer.py" "$CROPS" "$SIZE" "$QUALITY" "$CAP")
else
  echo "(no OpenCV in $PY: peer skipped; run Deploy/install-deps.sh)"
  peer='{}'
fi
python3 - "$beand" "$peer" <<'PY'
import json, sys
b, p = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print("| measure | beand | peer (Python/OpenCV) |")
print("|---|---:|---:|")
print(f"| offer on the decision thread, ns | {b['offer_ns']:.0f} | - |")
print(f"| JPEG encode, µs | {b['encode_us']:.1f} | - |")
print(f"| writer, crops/s | {b['write_crops_per_s']:.0f} | {p.get('write_crops_per_s', float('nan')):.0f} |")
print(f"| writer, µs per crop | {b['write_us']:.0f} | {p.get('write_us', float('nan')):.0f} |")
print(f"| evicted to stay under the cap | {b['evicted']:.0f} | {p.get('evicted', '-')} |")
print(f"| mean JPEG size, bytes | {b['jpeg_bytes']:.0f} | - |")
if p:
    print(f"ratio beand/peer (writer crops/s): {b['write_crops_per_s'] / p['write_crops_per_s']:.2f}")
PY
