#!/usr/bin/env bash
# Packaging: `Deploy/install.sh` into a DESTDIR puts every file in its FHS place; the unit passes
# `systemd-analyze verify` and its offline security exposure is ≤ 2.0; sysusers/tmpfiles parse;
# man pages are mandoc-lint clean; completions are valid scripts.
set -euo pipefail
cd "$BEAND_ROOT"
fail=0
ok()   { echo "ok   $*"; }
bad()  { echo "FAIL $*"; fail=1; }

dest=$(mktemp -d); trap 'rm -rf "$dest"' EXIT
./Deploy/install.sh --destdir "$dest" --prefix /usr --bindir-from "$BEAND_BIN" >/dev/null

for f in usr/bin/beand usr/bin/beanctl usr/lib/systemd/system/beand.service usr/lib/sysusers.d/beand.conf \
         usr/lib/tmpfiles.d/beand.conf usr/lib/systemd/catalog/beand.catalog etc/beand/beand.toml \
         usr/share/man/man8/beand.8 usr/share/man/man1/beanctl.1 usr/share/man/man5/beand.toml.5 \
         usr/share/bash-completion/completions/beanctl usr/share/zsh/vendor-completions/_beanctl \
         usr/share/fish/vendor_completions.d/beanctl.fish; do
  [ -s "$dest/$f" ] && ok "installed $f" || bad "missing $f"
done

# The installed example config must be valid for the installed daemon.
if "$dest/usr/bin/beand" --check-config --config "$dest/etc/beand/beand.toml" >/dev/null 2>&1; then
  ok "shipped config passes --check-config"
else
  bad "shipped config fails --check-config: $("$dest/usr/bin/beand" --check-config --config "$dest/etc/beand/beand.toml" 2>&1)"
fi

# verify resolves ExecStart= binaries and Documentation= man pages: point both at the DESTDIR tree.
unitdir=$(mktemp -d)
sed "s#/usr/bin/#$dest/usr/bin/#g" "$dest/usr/lib/systemd/system/beand.service" > "$unitdir/beand.service"
out=$(MANPATH="$dest/usr/share/man" systemd-analyze verify "$unitdir/beand.service" 2>&1) && [ -z "$out" ] \
  && ok "systemd-analyze verify clean" || bad "systemd-analyze verify: $out"
rm -rf "$unitdir"

exposure=$(systemd-analyze security --offline=true "$dest/usr/lib/systemd/system/beand.service" 2>&1 \
           | sed -n 's/.*Overall exposure level for beand.service: \([0-9.]*\).*/\1/p')
if [ -n "$exposure" ] && awk "BEGIN{exit !($exposure <= 2.0)}"; then ok "security exposure $exposure <= 2.0"
else bad "security exposure '$exposure' > 2.0"; fi
grep -q "exposure $exposure" README.md && ok "README states exposure $exposure" || bad "README does not state exposure $exposure"

for key in Type=notify WatchdogSec= Restart=on-failure RestartPreventExitStatus=78 User=beand \
           SupplementaryGroups=video DevicePolicy=closed "DeviceAllow=char-video4linux rw" PrivateNetwork=yes \
           RestrictAddressFamilies=AF_UNIX ProtectSystem=strict StateDirectory= RuntimeDirectory= \
           ConfigurationDirectory= NoNewPrivileges=yes SystemCallFilter=@system-service LogRateLimitBurst= \
           LogRateLimitIntervalSec=; do
  grep -q "^$key" Deploy/beand.service && ok "unit has $key" || bad "unit lacks $key"
done

# sysusers/tmpfiles syntax, checked by systemd's own parsers against a scratch root.
root=$(mktemp -d); mkdir -p "$root/etc"; touch "$root/etc/passwd" "$root/etc/group" "$root/etc/shadow" "$root/etc/gshadow"
if systemd-sysusers --root="$root" "$dest/usr/lib/sysusers.d/beand.conf" 2>&1; then
  grep -q '^beand:' "$root/etc/passwd" && grep -q '^beand-admin:' "$root/etc/group" && ok "sysusers creates beand, beand-admin" \
    || bad "sysusers did not create the users/groups"
  grep -q '^video:.*beand' "$root/etc/group" && ok "beand is in group video" || bad "beand not in video"
else bad "systemd-sysusers rejected beand.conf"; fi
if out=$(systemd-tmpfiles --root="$root" --dry-run --create "$dest/usr/lib/tmpfiles.d/beand.conf" 2>&1) \
   || out=$(systemd-tmpfiles --root="$root" --create "$dest/usr/lib/tmpfiles.d/beand.conf" 2>&1); then
  ok "tmpfiles.d parses"
else bad "systemd-tmpfiles: $out"; fi
rm -rf "$root"

for page in man/*.[1-8]; do
  if out=$(mandoc -Tlint -W warning "$page" 2>&1); then ok "mandoc lint $page"; else bad "mandoc lint $page: $out"; fi
done

bash -n "$dest/usr/share/bash-completion/completions/beanctl" && ok "bash completion parses" || bad "bash completion"
grep -q "status" "$dest/usr/share/bash-completion/completions/beanctl" && ok "completion knows 'status'" || bad "completion lacks status"

# The journald catalog lists every MESSAGE_ID the daemon uses, and nothing else.
code_ids=$(grep -rhoE '"[0-9a-f]{32}"' Sources/BeanService | tr -d '"' | sort -u)
catalog_ids=$(grep -oE '^-- [0-9a-f]{32}' Deploy/beand.catalog | cut -c4- | sort -u)
man_ids=$(grep -ohE '[0-9a-f]{32}' man/beand.8 | sort -u)
[ -n "$code_ids" ] && [ "$code_ids" = "$catalog_ids" ] && ok "catalog MESSAGE_IDs = code's ($(echo "$code_ids" | wc -l))" \
  || bad "catalog IDs differ from code: code=[$code_ids] catalog=[$catalog_ids]"
[ "$code_ids" = "$man_ids" ] && ok "beand(8) lists every MESSAGE_ID" || bad "beand(8) IDs differ from code"
journalctl --root="$dest" --update-catalog >/dev/null 2>&1 || true

exit $fail
