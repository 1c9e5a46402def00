#!/usr/bin/env bash
# beanctl segment on images the project makes itself: JSON schema and counts on a synthetic belt
# frame, overlays written as PNG, and clear errors for garbage, truncated and missing files and bad
# flags. Needs no shared data.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-}"; [ -x "$PY" ] || PY=python3
CTL="$BIN/beanctl"
[ -x "$CTL" ] || { echo "60-segment-cli: $CTL missing (swift build first)"; exit 1; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

# A synthetic 1280x720 belt frame with ~40 beans (the benchmark's first frame).
"$CTL" bench segment --frames 1 --write-frame "$tmp/belt.png" >/dev/null
"$CTL" segment --json --background 196,200,194 --overlay "$tmp/overlays" "$tmp/belt.png" "$tmp/belt.png" >"$tmp/out.json" 2>"$tmp/err"
check "segment exits 0 on a good PNG" '[ $? -eq 0 ]'
check "one JSON line per image" '[ "$(wc -l <"$tmp/out.json")" -eq 2 ]'
"$PY" - "$tmp/out.json" <<'PY' >"$tmp/schema" 2>&1
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1])]
for d in lines:
    assert set(d) == {"image", "count", "beans"}, d.keys()
    assert d["count"] == len(d["beans"])
    for b in d["beans"]:
        assert set(b) == {"box", "area", "centroid", "angle"}, b.keys()
        x, y, w, h = b["box"]
        assert w > 0 and h > 0 and b["area"] <= w * h
        cx, cy = b["centroid"]
        assert x <= cx < x + w and y <= cy < y + h
        assert -90 < b["angle"] <= 90
# The frame holds 40 beans in view on average; beans cut by the top and bottom edges count too.
assert 36 <= lines[0]["count"] <= 46, lines[0]["count"]
print("count", lines[0]["count"])
PY
check "JSON schema and plausible count ($(cat "$tmp/schema" | tail -1))" '[ $? -eq 0 ] || false'
grep -q '^count' "$tmp/schema" || { cat "$tmp/schema"; fail=1; }
check "overlay PNGs written, repeated names numbered" '[ -s "$tmp/overlays/belt.png" ] && [ -s "$tmp/overlays/belt-2.png" ]'
check "overlay is a PNG" '[ "$(head -c 8 "$tmp/overlays/belt.png" | od -An -tx1 | tr -d " \n")" = "89504e470d0a1a0a" ]'

# Text mode names the image and the count.
"$CTL" segment --background 196,200,194 "$tmp/belt.png" >"$tmp/text"
check "text report has Image and Beans lines" 'grep -q "^Image *: " "$tmp/text" && grep -q "^Beans *: [0-9]" "$tmp/text"'

# Bad input: each fails with a message naming the file or flag.
head -c 5000 /dev/urandom >"$tmp/garbage.jpg"
"$CTL" segment "$tmp/garbage.jpg" >/dev/null 2>"$tmp/err"; rc=$?
check "garbage file fails naming it" '[ $rc -ne 0 ] && grep -q "garbage.jpg" "$tmp/err" && grep -qi "neither JPEG nor PNG" "$tmp/err"'
head -c 3000 "$tmp/belt.png" >"$tmp/truncated.png"
"$CTL" segment "$tmp/truncated.png" >/dev/null 2>"$tmp/err"; rc=$?
check "truncated PNG fails naming it" '[ $rc -ne 0 ] && grep -q "truncated.png" "$tmp/err"'
"$CTL" segment "$tmp/missing.png" >/dev/null 2>"$tmp/err"; rc=$?
check "missing file fails naming it" '[ $rc -ne 0 ] && grep -q "missing.png" "$tmp/err"'
"$CTL" segment --roi 1,2,3 "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "bad --roi rejected" '[ $rc -ne 0 ] && grep -q -- "--roi" "$tmp/err"'
"$CTL" segment --background 300,0,0 "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "bad --background rejected" '[ $rc -ne 0 ] && grep -q -- "--background" "$tmp/err"'
"$CTL" segment --min-area 500 --max-area 10 "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "max-area below min-area rejected naming maxArea" '[ $rc -ne 0 ] && grep -q "maxArea" "$tmp/err"'
# One bad file among good ones: the good ones are still reported, the exit status says failure.
"$CTL" segment --json --background 196,200,194 "$tmp/belt.png" "$tmp/garbage.jpg" >"$tmp/mixed" 2>/dev/null; rc=$?
check "good images reported despite a bad one" '[ $rc -ne 0 ] && [ "$(wc -l <"$tmp/mixed")" -eq 1 ]'

# --config: the settings a camera of the daemon's configuration would use; bad configs are named.
cat >"$tmp/beand.toml" <<TOML
[[camera]]
name = "wide"
source = "belt:$tmp/belt.png"
min_area = 100000000

[[camera]]
name = "belt"
source = "belt:$tmp/belt.png"
threshold = 20
TOML
"$CTL" segment --json --background 196,200,194 "$tmp/belt.png" >"$tmp/flags.json"
"$CTL" segment --json --config "$tmp/beand.toml" --camera belt --background 196,200,194 "$tmp/belt.png" >"$tmp/cfg.json"; rc=$?
check "--config --camera segments with that camera's settings" '[ $rc -eq 0 ] && [ "$(grep -o "\"count\":[0-9]*" "$tmp/cfg.json")" = "$(grep -o "\"count\":[0-9]*" "$tmp/flags.json")" ]'
"$CTL" segment --json --config "$tmp/beand.toml" "$tmp/belt.png" >"$tmp/first.json"; rc=$?
check "--config without --camera takes the first camera (min_area filters every bean)" '[ $rc -eq 0 ] && grep -q "\"count\":0" "$tmp/first.json"'
"$CTL" segment --config "$tmp/beand.toml" --camera nope "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "unknown --camera named with the cameras it has" '[ $rc -ne 0 ] && grep -q "no camera named .nope. (cameras: wide, belt)" "$tmp/err"'
printf '[[camera]]\nname = "a"\nsource = "belt:/x.png"\nsegmentation = "bogus"\n' >"$tmp/bad.toml"
"$CTL" segment --config "$tmp/bad.toml" "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "bad config named PATH:LINE and key" '[ $rc -ne 0 ] && grep -q "bad.toml:4: key .camera\[0\].segmentation." "$tmp/err"'
"$CTL" segment --config "$tmp/beand.toml" --preset tray "$tmp/belt.png" >/dev/null 2>"$tmp/err"; rc=$?
check "--config with --preset is a usage error" '[ $rc -eq 64 ]'

[ $fail -eq 0 ] && echo "60-segment-cli: pass" || echo "60-segment-cli: FAIL"
exit $fail
