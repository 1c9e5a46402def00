#!/usr/bin/env bash
# beand --check-config / --config / --version from the command line: exit 0 for valid files, 78
# (EX_CONFIG) with the exact PATH:LINE message for bad ones, also when starting the daemon.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BEAND="${BEAND_BIN:-$ROOT/.build/debug}/beand"
[ -x "$BEAND" ] || { echo "SKIP: $BEAND not built"; exit 77; }
dir=$(mktemp -d); trap 'rm -rf "$dir"' EXIT
failures=0
expect() { # name, expected rc, expected stderr, file content
  local name=$1 rc=$2 want=$3 content=$4 file="$dir/$1.toml"
  printf '%s' "$content" > "$file"
  local got; got=$("$BEAND" --check-config --config "$file" 2>&1 >/dev/null); local code=$?
  want=${want//@F@/$file}
  if [ "$code" = "$rc" ] && [ "$got" = "$want" ]; then echo "ok: $name (rc=$code)"
  else echo "FAIL: $name: rc=$code (want $rc) stderr='$got' (want '$want')"; failures=$((failures+1)); fi
}
expect valid 0 "" $'[control]\nsocket = "/run/x/c.sock"\n[[camera]]\nname = "cam0"\nsource = "v4l2:/dev/video0"\n'
expect empty 0 "" ""
expect relative-socket 78 "@F@:3: key 'control.socket': must be an absolute path, got 'c.sock'" $'# c\n[control]\nsocket = "c.sock"\n'
expect unknown-key 78 "@F@:2: key 'daemon.drain_timeout': unknown key" $'[daemon]\ndrain_timeout = 5\n'
expect wrong-type 78 "@F@:2: key 'control.idle_timeout_s': expected integer, found float" $'[control]\nidle_timeout_s = 1.5\n'
expect bad-scheme 78 "@F@:3: key 'camera[0].source': unknown source scheme 'rtsp' (expected v4l2:PATH, replay:DIR or belt:IMAGE)" $'[[camera]]\nname = "a"\nsource = "rtsp://x"\n'
expect duplicate-camera 78 "@F@:5: key 'camera[1].name': duplicate camera name 'a' (first used on line 2)" $'[[camera]]\nname = "a"\nsource = "v4l2:/dev/video0"\n[[camera]]\nname = "a"\nsource = "v4l2:/dev/video1"\n'
expect log-level 78 "@F@:2: key 'log.level': unknown value 'loud' (expected one of: trace, debug, info, notice, warning, error, critical)" $'[log]\nlevel = "loud"\n'
expect syntax 78 "@F@:2: syntax error: Error while parsing key-value pair: expected '=', saw '\\n' (column 6)" $'[log]\nlevel\n'
expect two-problems 78 "@F@:2: key 'log.x': unknown key
@F@:4: key 'store.path': expected string, found boolean" $'[log]\nx = 1\n[store]\npath = true\n'
printf '\xff\xfe' > "$dir/binary.toml"
got=$("$BEAND" --check-config --config "$dir/binary.toml" 2>&1); code=$?
[ $code = 78 ] && [ "$got" = "$dir/binary.toml: not UTF-8 text (invalid byte sequence on line 1)" ] && echo "ok: binary file" || { echo "FAIL: binary file: $code $got"; failures=$((failures+1)); }
got=$("$BEAND" --check-config --config "$dir/missing.toml" 2>&1); code=$?
[ $code = 78 ] && [ "$got" = "$dir/missing.toml: cannot open: No such file or directory" ] && echo "ok: missing file" || { echo "FAIL: missing file: $code $got"; failures=$((failures+1)); }
# Starting (not just checking) with a bad config also exits 78 before binding anything.
got=$("$BEAND" --config "$dir/relative-socket.toml" 2>&1); code=$?
[ $code = 78 ] && [[ "$got" == *"key 'control.socket'"* ]] && echo "ok: start with bad config → 78" || { echo "FAIL: start bad config: $code $got"; failures=$((failures+1)); }
[ "$("$BEAND" --version)" = "0.1.0" ] && echo "ok: --version" || { echo "FAIL: --version"; failures=$((failures+1)); }
"$BEAND" --bogus >/dev/null 2>&1; code=$?
[ $code = 64 ] && echo "ok: unknown flag → 64" || { echo "FAIL: unknown flag rc=$code"; failures=$((failures+1)); }
[ $failures = 0 ] && echo PASS || { echo "$failures failures"; exit 1; }
