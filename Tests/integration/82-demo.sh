#!/usr/bin/env bash
# The README's main job, `make run` (Deploy/run-demo.sh), on the built binaries: beand starts on
# Config/demo.toml, status blocks appear, the teaching step enrolls Config/demo/teach/ as store
# generation 2 while the daemon runs, and from then on the demo's near-black beans are rejected as
# Black (none before: the shipped store never saw them), without a restart; good beans are not.
# A bad DEMO_TEACH_AFTER is refused by name before beand starts.
set -euo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
[ -x "$BIN/beand" ] && [ -x "$BIN/beanctl" ] || { echo "SKIP: beand/beanctl not built in $BIN"; exit 77; }
cd "$ROOT"
log=$(mktemp); trap 'rm -f "$log"' EXIT
fail() { echo "FAIL: $*"; tail -40 "$log"; exit 1; }
# A bad DEMO_TEACH_AFTER is refused before anything starts.
rc=0; BEAND_BIN="$BIN" DEMO_TEACH_AFTER=soon ./Deploy/run-demo.sh >"$log" 2>&1 || rc=$?
[ $rc -eq 2 ] && grep -q "run-demo: DEMO_TEACH_AFTER must be whole seconds or off, got 'soon'" "$log" \
  && ! grep -q "^beand is running" "$log" || fail "DEMO_TEACH_AFTER=soon: rc $rc"
echo "ok: DEMO_TEACH_AFTER=soon refused before beand starts"
BEAND_BIN="$BIN" DEMO_SECONDS=40 DEMO_TEACH_AFTER=10 ./Deploy/run-demo.sh >"$log" 2>&1 || fail "run-demo.sh exited $?"
grep -q "^beand is running" "$log" || fail "no start line"
grep -q "^\[teach\] published generation 2 (.* vectors, +12)" "$log" || fail "the teaching step did not publish generation 2"
# Status blocks before and after the teaching step (the reject stream's lines interleave).
python3 - "$log" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
before, _, after = text.partition("---- teaching:")
def figures(part):
    beans = [int(m) for m in re.findall(r"^Beans +: (\d+)", part, re.M)]
    rejects = [int(m) for m in re.findall(r"^Rejects +: (\d+)", part, re.M)]
    return beans, rejects
b0, r0 = figures(before)
b1, r1 = figures(after)
def check(ok, msg):
    print(("ok: " if ok else "FAIL: ") + msg)
    if not ok: sys.exit(1)
check(b0 and b0[-1] > 0, "beans decided before teaching: %s" % b0)
check(r0 and r0[-1] == 0, "no reject before teaching (the shipped store never saw these beans): %s" % r0)
check(b1 and r1 and r1[-1] > 0, "rejects after teaching: %s of %s beans" % (r1[-1:], b1[-1:]))
new_beans, new_rejects = b1[-1] - b0[-1], r1[-1] - r0[-1]
# 20 % of the scene's beans are near-black; a good bean rejected would push the share well above.
check(new_rejects <= 0.3 * new_beans, "rejects after teaching are the near-black share: %d of %d" % (new_rejects, new_beans))
# The reject stream is printed by a background `beanctl tail`, so a status block can cut into one
# of its lines: count the whole lines only.
labels = set(re.findall(r"^\[reject stream\] .* REJECT (\S+) \(", after, re.M))
check(labels == {"Black"}, "every reject is Black: %s" % labels)
gens = re.findall(r"^Store generation +: (\d+)", after, re.M)
check(gens and gens[-1] == "2", "the running daemon serves generation 2: %s" % gens[-1:])
PY
echo PASS
