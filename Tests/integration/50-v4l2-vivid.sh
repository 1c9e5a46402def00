#!/usr/bin/env bash
# Real V4L2: boots Debian's kernel in QEMU (TCG) with the vivid driver and runs v4l2-probe, which
# drives BeanCapture's V4L2Camera: 640x480 in RGB24 and YUYV, sequence numbers, vivid's 75% colour
# bars, then the device unbound mid-stream (lost) and bound again (recovered).
# Downloads and builds are cached in $BEAND_V4L2_CACHE (default ~/.cache/beand-v4l2); see
# Tests/v4l2/README.md. Skips (77) only when QEMU cannot run here.
set -uo pipefail
ROOT=${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${BEAND_V4L2_CACHE:-$HOME/.cache/beand-v4l2}
PY=${BEAND_PY:-python3}; [ -x "$PY" ] || PY=python3

if ! command -v qemu-system-x86_64 >/dev/null; then
  echo "SKIP: qemu-system-x86_64 is not installed (Deploy/install-deps.sh installs qemu-system-x86)"; exit 77
fi
if ! grep -qx tcg <<<"$(timeout 10 qemu-system-x86_64 -accel help 2>/dev/null)"; then
  echo "SKIP: qemu-system-x86_64 here has no TCG accelerator, so it cannot boot the test kernel"; exit 77
fi
for tool in busybox cpio depmod dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool missing (run Deploy/install-deps.sh)"; exit 1; }
done

paths=$("$ROOT/Tests/v4l2/build-image.sh") || { echo "FAIL: could not build the test image"; exit 1; }
KERNEL=$(sed -n 's/^KERNEL=//p' <<<"$paths")
INITRD=$(sed -n 's/^INITRD=//p' <<<"$paths")
LOG="$CACHE/last-serial.log"

start=$(date +%s)
timeout 200 qemu-system-x86_64 -accel tcg -cpu max -smp 2 -m 1G -nographic -no-reboot \
  -kernel "$KERNEL" -initrd "$INITRD" -append 'console=ttyS0 panic=-1 loglevel=4' </dev/null >"$LOG" 2>&1
qrc=$?
echo "qemu exited with $qrc after $(( $(date +%s) - start ))s; serial log: $LOG"
grep -aE 'PROBE|HARNESS' "$LOG" | sed 's/^.*\(PROBE\|HARNESS\)/  \1/'
if [ $qrc -eq 124 ]; then echo "FAIL: the guest did not finish within 200 s"; exit 1; fi
"$PY" "$ROOT/Tests/v4l2/check-serial.py" "$LOG"
