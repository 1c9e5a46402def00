#!/usr/bin/env bash
# The main job on the built-in demo configuration: starts beand on Config/demo.toml in the
# foreground's background, shows `beanctl status` as it runs, and stops beand cleanly on Ctrl-C
# (or after DEMO_SECONDS seconds when that is set, e.g. for a non-interactive check).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${BEAND_BIN:-.build/release}"
TEMPLATE="${DEMO_CONFIG:-Config/demo.toml}"
DEMO_DIR=/tmp/beand-demo
mkdir -p "$DEMO_DIR/state"
# Fresh copies of the shipped encoder and store (Config/model, trained by `beanctl train`; see
# MODEL_CARD.md) and of the demo scene: the daemon and `beanctl enroll`/`store add` may change them.
# DEMO_MODEL=Config/demo runs the old random-weight stand-in instead.
MODEL_DIR="${DEMO_MODEL:-Config/model}"
TEACH_AFTER="${DEMO_TEACH_AFTER:-10}"
case "$TEACH_AFTER" in
  off) ;;
  ''|*[!0-9]*) echo "run-demo: DEMO_TEACH_AFTER must be whole seconds or off, got '$TEACH_AFTER'" >&2; exit 2 ;;
esac
rm -rf "$DEMO_DIR/state/store"
cp -r "$MODEL_DIR/store" "$DEMO_DIR/state/store"
rm -f "$DEMO_DIR/state/store/LOCK"
cp "$MODEL_DIR/encoder.onnx" "$DEMO_DIR/state/encoder.onnx"
cp Config/demo/belt.png "$DEMO_DIR/belt.png"
# The demo runs as whoever typed `make run`: their primary group owns the sockets.
CONFIG="$DEMO_DIR/demo.toml"
group=$(id -gn)
sed -e "s/^group = \"beand\"/group = \"$group\"/" -e "s/^admin_group = \"beand-admin\"/admin_group = \"$group\"/" \
  "$TEMPLATE" > "$CONFIG"
SOCKET=$(sed -n '/^\[control\]/,/^\[/s/^socket *= *"\(.*\)"/\1/p' "$CONFIG" | head -1)

"$BIN/beand" --check-config --config "$CONFIG"
"$BIN/beand" --config "$CONFIG" &
pid=$!
stop() { kill -TERM "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
trap 'stop; exit 0' INT TERM
trap stop EXIT

for _ in $(seq 100); do
  "$BIN/beanctl" --socket "$SOCKET" ping >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { echo "run-demo: beand exited during start-up" >&2; exit 1; }
  sleep 0.1
done
REJECTS=$(sed -n '/^\[rejects\]/,/^\[/s/^socket *= *"\(.*\)"/\1/p' "$CONFIG" | head -1)
echo "beand is running (pid $pid) on $CONFIG; control socket $SOCKET. Ctrl-C stops it."
echo "In another terminal: $BIN/beanctl --socket $SOCKET watch"
echo "                     $BIN/beanctl tail --rejects-socket $REJECTS"
# Show the reject stream as it happens, next to the status blocks below.
"$BIN/beanctl" tail --rejects-socket "$REJECTS" 2>/dev/null | sed 's/^/[reject stream] /' &
tail_pid=$!
trap 'kill $tail_pid 2>/dev/null; stop' EXIT
# The shipped encoder and store never saw the demo's synthetic near-black beans, so they pass at
# first. After DEMO_TEACH_AFTER seconds (default 10; "off" skips it) the operator's workflow runs:
# `beanctl enroll` adds six photos of such beans as Black (and six good ones) as a new store
# generation, the running daemon picks it up, and rejects start, with no restart.
started=$(date +%s)
teach_at=
[ "$TEACH_AFTER" = off ] || teach_at=$(( started + 10#$TEACH_AFTER ))
deadline=$(( started + ${DEMO_SECONDS:-1000000000} ))
while kill -0 "$pid" 2>/dev/null && [ "$(date +%s)" -lt "$deadline" ]; do
  echo "---- beanctl status ($(date +%T))"
  "$BIN/beanctl" --socket "$SOCKET" status || true
  if [ -n "$teach_at" ] && [ "$(date +%s)" -ge "$teach_at" ]; then
    teach_at=
    echo "---- teaching: beanctl enroll --config $CONFIG --tree Config/demo/teach --layout '{label}/{id}'"
    "$BIN/beanctl" enroll --config "$CONFIG" --tree Config/demo/teach --layout '{label}/{id}' 2>&1 \
      | grep -v '^crop:\|^embed:' | sed 's/^/[teach] /' || echo "[teach] enroll failed; the demo goes on with the shipped store"
  fi
  sleep 5
done
