#!/usr/bin/env bash
# Idempotent set-up for a fresh Debian 12 machine: apt packages the build, tests and benchmarks need,
# and the Python venv (.venv) that holds the test oracles and benchmark peers. Safe to run repeatedly;
# does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  pkg-config libv4l-dev libopenblas-dev libsystemd-dev libjpeg62-turbo-dev libpng-dev
  mandoc systemd util-linux python3-venv
)
# Test-only: QEMU and a static busybox for the real-V4L2 (vivid) harness, v4l-utils for debugging.
APT_PACKAGES+=(qemu-system-x86 busybox-static cpio kmod zstd xz-utils)

missing=()
for p in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "install-deps: installing ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

export PATH="/opt/swift/usr/bin:$PATH"
command -v swift >/dev/null || { echo "install-deps: swift not found (expected at /opt/swift)" >&2; exit 1; }

# Python venv for oracles/peers only: the daemon and beanctl never use Python.
PY_REQ=Tests/python-requirements.txt
STAMP=.venv/.installed-$(sha256sum "$PY_REQ" | cut -c1-16)
if [ ! -f "$STAMP" ]; then
  PY=python3
  [ -x .venv/bin/python ] || "$PY" -m venv .venv
  .venv/bin/pip install -q --disable-pip-version-check -r "$PY_REQ"
  rm -f .venv/.installed-*; touch "$STAMP"
fi
