#!/usr/bin/env bash
# Builds what the vivid harness boots: Debian's kernel (vmlinuz) and an initramfs holding busybox,
# the vivid module chain, a static-stdlib build of v4l2-probe and its shared libraries.
# Everything downloaded or built is cached under $BEAND_V4L2_CACHE (default ~/.cache/beand-v4l2),
# keyed by content, so a rerun only rebuilds what changed.
# Prints two lines: KERNEL=path and INITRD=path.
set -euo pipefail
ROOT=${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
CACHE=${BEAND_V4L2_CACHE:-$HOME/.cache/beand-v4l2}
export PATH="/opt/swift/usr/bin:$PATH"
mkdir -p "$CACHE/debs"
log() { echo "build-image: $*" >&2; }

# 1. Debian's kernel package: linux-image-amd64 is a metapackage; follow its dependency.
meta=$(ls "$CACHE"/debs/linux-image-amd64_*.deb 2>/dev/null | head -1 || true)
if [ -z "$meta" ]; then
  log "apt-get download linux-image-amd64"
  (cd "$CACHE/debs" && apt-get download linux-image-amd64 >&2)
  meta=$(ls "$CACHE"/debs/linux-image-amd64_*.deb | head -1)
fi
image_pkg=$(dpkg-deb -f "$meta" Depends | tr ',' '\n' | grep -o 'linux-image-[0-9][^ ]*-amd64' | head -1)
[ -n "$image_pkg" ] || { log "cannot find the kernel image dependency of $meta"; exit 1; }
deb=$(ls "$CACHE"/debs/"${image_pkg}"_*.deb 2>/dev/null | head -1 || true)
if [ -z "$deb" ]; then
  log "apt-get download $image_pkg"
  (cd "$CACHE/debs" && apt-get download "$image_pkg" >&2)
  deb=$(ls "$CACHE"/debs/"${image_pkg}"_*.deb | head -1)
fi
kver=${image_pkg#linux-image-}

# 2. Unpack once; depmod builds the modules.dep the package leaves to its postinst.
kdir="$CACHE/kernel-$kver"
if [ ! -f "$kdir/.done" ]; then
  log "unpacking $(basename "$deb")"
  rm -rf "$kdir"; mkdir -p "$kdir"
  dpkg-deb -x "$deb" "$kdir/root"
  depmod -b "$kdir/root" "$kver"
  # Keep only what the harness uses (the kernel and drivers/media, where the whole vivid chain
  # lives): 400 MB unpacked shrinks to a few tens.
  find "$kdir/root/lib/modules/$kver/kernel" -mindepth 1 -maxdepth 1 ! -name drivers -exec rm -rf {} +
  find "$kdir/root/lib/modules/$kver/kernel/drivers" -mindepth 1 -maxdepth 1 ! -name media -exec rm -rf {} +
  rm -rf "$kdir/root/usr"
  touch "$kdir/.done"
fi
moddir="$kdir/root/lib/modules/$kver"
KERNEL="$kdir/root/boot/vmlinuz-$kver"

# The chain vivid needs, dependencies first: modules.dep lists them so that loading from the end
# of the list backwards works (what modprobe does).
deps=$(grep -E '(^|/)vivid\.ko(\.xz|\.zst)?:' "$moddir/modules.dep" | cut -d: -f2)
[ -n "$(grep -E '(^|/)vivid\.ko' "$moddir/modules.dep")" ] || { log "vivid not in $moddir/modules.dep"; exit 1; }
vivid=$(grep -E '(^|/)vivid\.ko(\.xz|\.zst)?:' "$moddir/modules.dep" | cut -d: -f1)
order=""
for m in $deps; do order="$m $order"; done
order="$order $vivid"

# 3. The probe, statically linked against the Swift runtime (system libraries stay shared).
log "swift build -c release --static-swift-stdlib --product v4l2-probe"
(cd "$ROOT" && swift build -c release --static-swift-stdlib --product v4l2-probe 2>&1 | tail -3 >&2)
probe="$ROOT/.build/release/v4l2-probe"
[ -x "$probe" ] || { log "no probe binary at $probe"; exit 1; }

# 4. The initramfs, rebuilt only when one of its inputs changed.
key=$( { sha256sum "$probe" "$ROOT/Tests/v4l2/init.sh" /bin/busybox; echo "$kver $order"; } | sha256sum | cut -c1-16)
INITRD="$CACHE/initramfs-$key.cpio.gz"
if [ ! -f "$INITRD" ]; then
  log "building initramfs $INITRD"
  stage=$(mktemp -d "$CACHE/stage.XXXXXX")
  trap 'rm -rf "$stage"' EXIT
  mkdir -p "$stage"/{bin,proc,sys,dev,tmp,probe,lib/modules}
  cp /bin/busybox "$stage/bin/busybox"
  cp "$ROOT/Tests/v4l2/init.sh" "$stage/init"
  chmod 755 "$stage/init"
  cp "$probe" "$stage/probe/v4l2-probe"
  # Shared libraries at their own absolute paths, plus the loader.
  for lib in $(ldd "$probe" | grep -o '/[^ ]*'); do
    mkdir -p "$stage$(dirname "$lib")"
    cp -L "$lib" "$stage$lib"
  done
  : > "$stage/modules.order"
  for m in $order; do
    mkdir -p "$stage/lib/modules/$(dirname "$m")"
    case "$m" in
      *.ko.xz) xz -dc "$moddir/$m" > "$stage/lib/modules/${m%.xz}"; m=${m%.xz};;
      *.ko.zst) zstd -qdc "$moddir/$m" > "$stage/lib/modules/${m%.zst}"; m=${m%.zst};;
      *) cp "$moddir/$m" "$stage/lib/modules/$m";;
    esac
    echo "$m" >> "$stage/modules.order"
  done
  (cd "$stage" && find . | cpio -o -H newc --quiet | gzip -1 > "$INITRD.tmp")
  mv "$INITRD.tmp" "$INITRD"
  # Keep the cache small: only the newest initramfs is worth keeping.
  find "$CACHE" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -name "$(basename "$INITRD")" -delete
fi
echo "KERNEL=$KERNEL"
echo "INITRD=$INITRD"
