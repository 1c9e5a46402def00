#!/usr/bin/env bash
# Installs beand into FHS places under DESTDIR (for packaging) or / (default):
#   binaries, systemd unit, sysusers.d/tmpfiles.d, journald catalog, example config, man pages,
#   shell completions. Usage: Deploy/install.sh [--destdir DIR] [--prefix /usr] [--bindir-from DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
DESTDIR="${DESTDIR:-}"; PREFIX="${PREFIX:-/usr}"; FROM=".build/release"
while (($#)); do
  case "$1" in
    --destdir) DESTDIR="$2"; shift 2;;
    --prefix) PREFIX="$2"; shift 2;;
    --bindir-from) FROM="$2"; shift 2;;
    *) echo "install.sh: unknown argument $1" >&2; exit 64;;
  esac
done
for b in beand beanctl; do
  [ -x "$FROM/$b" ] || { echo "install.sh: $FROM/$b not built (run 'make release' first)" >&2; exit 1; }
done
# systemd looks for units, sysusers, tmpfiles and catalogs under /usr/lib (Debian: /lib is /usr/lib).
SYSTEMD_LIB="$PREFIX/lib"
[ "$PREFIX" = "/usr/local" ] && SYSTEMD_LIB="/usr/local/lib"

install -Dm0755 "$FROM/beand"   "$DESTDIR$PREFIX/bin/beand"
install -Dm0755 "$FROM/beanctl" "$DESTDIR$PREFIX/bin/beanctl"
install -Dm0644 Deploy/beand.service   "$DESTDIR$SYSTEMD_LIB/systemd/system/beand.service"
if [ "$PREFIX" != "/usr" ]; then sed -i "s#/usr/bin/#$PREFIX/bin/#g" "$DESTDIR$SYSTEMD_LIB/systemd/system/beand.service"; fi
install -Dm0644 Deploy/beand.sysusers  "$DESTDIR$SYSTEMD_LIB/sysusers.d/beand.conf"
install -Dm0644 Deploy/beand.tmpfiles  "$DESTDIR$SYSTEMD_LIB/tmpfiles.d/beand.conf"
install -Dm0644 Deploy/beand.catalog   "$DESTDIR$SYSTEMD_LIB/systemd/catalog/beand.catalog"
# The config is the operator's: never overwrite an existing one.
if [ ! -e "$DESTDIR/etc/beand/beand.toml" ]; then
  install -Dm0640 Config/beand.toml "$DESTDIR/etc/beand/beand.toml"
fi
for page in man/*.[1-8]; do
  section="${page##*.}"
  install -Dm0644 "$page" "$DESTDIR$PREFIX/share/man/man$section/$(basename "$page")"
done
completions=$(mktemp -d); trap 'rm -rf "$completions"' EXIT
for shell in bash zsh fish; do
  "$FROM/beanctl" --generate-completion-script "$shell" > "$completions/$shell"
done
install -Dm0644 "$completions/bash" "$DESTDIR$PREFIX/share/bash-completion/completions/beanctl"
install -Dm0644 "$completions/zsh"  "$DESTDIR$PREFIX/share/zsh/vendor-completions/_beanctl"
install -Dm0644 "$completions/fish" "$DESTDIR$PREFIX/share/fish/vendor_completions.d/beanctl.fish"
if [ -z "$DESTDIR" ]; then
  systemd-sysusers beand.conf 2>/dev/null || systemd-sysusers || true
  systemd-tmpfiles --create beand.conf 2>/dev/null || true
  journalctl --update-catalog 2>/dev/null || true
  systemctl daemon-reload 2>/dev/null || true
fi
echo "installed beand into ${DESTDIR:-/}$PREFIX"
