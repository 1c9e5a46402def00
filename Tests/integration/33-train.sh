#!/usr/bin/env bash
# beanctl train on a tiny synthetic crop tree (no ../shared needed): a short backbone run whose
# loss goes down, --resume giving the same checkpoint as an uninterrupted run, `train head`
# output loaded by beand's runtime (beanctl model run) and onnxruntime with equal outputs, the
# store it writes, and bad input (empty crop dir, --labels 0, unreadable checkpoint) refused with
# a clear error.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-$ROOT/.venv/bin/python}"
if [ ! -x "$PY" ] || ! "$PY" -c "import onnxruntime, numpy" 2>/dev/null; then
  echo "skip: $PY lacks onnxruntime/numpy (run ./Deploy/install-deps.sh)"; exit 77
fi
if [ ! -x "$BIN/beanctl" ]; then echo "FAIL: $BIN/beanctl not built"; exit 1; fi
WORK=$(mktemp -d /tmp/beand-train.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
# Whether the last command's output ($out) matches: a here-string, not `echo | grep -q`, whose
# echo can die of SIGPIPE when grep stops at an early match, failing the pipe under pipefail.
out_has() { grep -q "$@" <<<"$out"; }

# 2 labels × 12 beans of 64×64 crops (PNG), one photo per bean: {label}/{id}; and a second tree
# of 2 × 6 beans of 48×48 crops for --crop-size.
"$PY" - "$WORK/tree" "$WORK/tree48" <<'EOF' || fail "cannot make the synthetic trees"
import os, struct, sys, zlib
import numpy as np
root = sys.argv[1]
rng = np.random.default_rng(1)
def png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
yy, xx = np.mgrid[0:64, 0:64]
for label, colour in (("Normal", (170, 140, 80)), ("Black", (50, 45, 40))):
    os.makedirs(f"{root}/{label}", exist_ok=True)
    for i in range(12):
        rx, ry = 20 + rng.uniform(0, 8), 12 + rng.uniform(0, 5)
        inside = ((xx - 32) / rx) ** 2 + ((yy - 32) / ry) ** 2 <= 1
        img = np.zeros((64, 64, 3), np.float64)
        img[inside] = np.array(colour) + rng.normal(0, 12, (inside.sum(), 3))
        png(f"{root}/{label}/{i:03d}.png", np.clip(img, 0, 255).astype(np.uint8))
small = sys.argv[2]
yy, xx = np.mgrid[0:48, 0:48]
for label, colour in (("Normal", (170, 140, 80)), ("Black", (50, 45, 40))):
    os.makedirs(f"{small}/{label}", exist_ok=True)
    for i in range(6):
        inside = ((xx - 24) / (15 + rng.uniform(0, 6))) ** 2 + ((yy - 24) / (9 + rng.uniform(0, 4))) ** 2 <= 1
        img = np.zeros((48, 48, 3))
        img[inside] = np.array(colour) + rng.normal(0, 12, (inside.sum(), 3))
        png(f"{small}/{label}/{i:03d}.png", np.clip(img, 0, 255).astype(np.uint8))
EOF

T="$BIN/beanctl train"
COMMON=(--widths 4,8 --blocks 1,1 --batch 8 --threads 1)

# Backbone: loss goes down over 6 epochs (mean loss of the last epoch below the first).
$T backbone --crops "$WORK/tree" --out "$WORK/straight" --epochs 6 --seed 3 "${COMMON[@]}" >"$WORK/straight.out" 2>"$WORK/straight.err" \
  || { cat "$WORK/straight.err"; fail "train backbone exited non-zero"; }
grep -q "backbone.onnx" "$WORK/straight.out" || fail "train backbone did not report its exported trunk"
losses=$(grep -o "mean loss [0-9.]*" "$WORK/straight.err" | awk '{print $3}')
[ "$(echo "$losses" | wc -l)" -eq 6 ] || { cat "$WORK/straight.err"; fail "expected 6 epoch lines"; }
first=$(echo "$losses" | head -1); last=$(echo "$losses" | tail -1)
awk -v a="$first" -v b="$last" 'BEGIN { exit !(b < a) }' || fail "loss did not decrease: $losses"
echo "ok: backbone loss $first → $last"

# Resume: 3 epochs, then --resume to 6 gives the same checkpoint bytes as the straight run.
$T backbone --crops "$WORK/tree" --out "$WORK/split" --epochs 3 --seed 3 "${COMMON[@]}" >/dev/null 2>&1 || fail "first half failed"
$T backbone --crops "$WORK/tree" --out "$WORK/split" --epochs 6 --seed 3 --resume "${COMMON[@]}" >/dev/null 2>"$WORK/resume.err" \
  || { cat "$WORK/resume.err"; fail "resume failed"; }
grep -q "resumed from .* after epoch 3" "$WORK/resume.err" || fail "resume did not say where it continued"
# The checkpoint header holds a JSON dictionary (key order varies): compare the exported weights.
cmp -s "$WORK/straight/backbone.onnx" "$WORK/split/backbone.onnx" || fail "resumed run's weights differ from the uninterrupted run's"
echo "ok: resumed run equals the uninterrupted run"
# A tree linked into place (the directory given is a symbolic link) is read like the directory.
ln -s "$WORK/tree" "$WORK/linked"
out=$($T backbone --crops "$WORK/linked" --out "$WORK/linked-out" --epochs 1 --max-steps-per-epoch 1 --seed 3 "${COMMON[@]}" 2>&1) \
  || fail "train backbone --crops <symbolic link>: '$out'"
out_has "pre-training (contrastive) on 24 crops" || fail "train backbone --crops <symbolic link> did not read the 24 crops: '$out'"
echo "ok: a crop directory given as a symbolic link"

# Every view option and the combined objective at once; a resume with another rotation is refused
# and says which setting differs.
VIEWS=(--objective contrastive+cutpaste --zoom 0.3 --brightness 0.2 --colour 0.1 --temperature 0.1)
$T backbone --crops "$WORK/tree" --out "$WORK/views" --epochs 2 --seed 3 "${VIEWS[@]}" --rotate 10 "${COMMON[@]}" >"$WORK/views.out" 2>"$WORK/views.err" \
  || { cat "$WORK/views.err"; fail "train backbone with every view option exited non-zero"; }
grep -q "pre-training (contrastive+cutpaste)" "$WORK/views.err" && grep -q "backbone.onnx" "$WORK/views.out" \
  || { cat "$WORK/views.err"; fail "combined objective: no summary or no exported trunk"; }
out=$($T backbone --crops "$WORK/tree" --out "$WORK/views" --epochs 3 --seed 3 --resume "${VIEWS[@]}" --rotate 20 "${COMMON[@]}" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "rotation = 10.0, this run has 20.0" || fail "resume with another --rotate: rc $rc, '$out'"
echo "ok: view options and contrastive+cutpaste; resume with another rotation refused"
# The multi-scale contrastive objective: a head trains on its checkpoint (whose projector differs).
$T backbone --crops "$WORK/tree" --out "$WORK/ms" --epochs 2 --seed 3 --objective contrastive-multiscale "${COMMON[@]}" >"$WORK/ms.out" 2>"$WORK/ms.err" \
  || { cat "$WORK/ms.err"; fail "train backbone --objective contrastive-multiscale exited non-zero"; }
grep -q "pre-training (contrastive-multiscale)" "$WORK/ms.err" || { cat "$WORK/ms.err"; fail "no contrastive-multiscale summary"; }
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --backbone "$WORK/ms/backbone.ckpt" --out "$WORK/ms.onnx" \
  --steps 5 --threads 1 >/dev/null 2>"$WORK/ms-head.err" || { cat "$WORK/ms-head.err"; fail "train head on a contrastive-multiscale backbone exited non-zero"; }
echo "ok: contrastive-multiscale backbone, and a head on it"
# BYOL: 2 epochs, then --resume to 3 (the target network is in the checkpoint); a head trains on it.
$T backbone --crops "$WORK/tree" --out "$WORK/byol" --epochs 2 --seed 3 --objective byol "${COMMON[@]}" >"$WORK/byol.out" 2>"$WORK/byol.err" \
  || { cat "$WORK/byol.err"; fail "train backbone --objective byol exited non-zero"; }
grep -q "pre-training (byol)" "$WORK/byol.err" || { cat "$WORK/byol.err"; fail "no byol summary"; }
$T backbone --crops "$WORK/tree" --out "$WORK/byol" --epochs 3 --seed 3 --objective byol --resume "${COMMON[@]}" >/dev/null 2>"$WORK/byol-resume.err" \
  || { cat "$WORK/byol-resume.err"; fail "byol --resume exited non-zero"; }
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --backbone "$WORK/byol/backbone.ckpt" --out "$WORK/byol.onnx" \
  --steps 5 --threads 1 >/dev/null 2>"$WORK/byol-head.err" || { cat "$WORK/byol-head.err"; fail "train head on a byol backbone exited non-zero"; }
echo "ok: byol backbone, resumed, and a head on it"
# Multi-crop: local views besides the two views; the checkpoint records their number.
$T backbone --crops "$WORK/tree" --out "$WORK/mc" --epochs 1 --seed 3 --local-views 2 "${COMMON[@]}" >"$WORK/mc.out" 2>"$WORK/mc.err" \
  || { cat "$WORK/mc.err"; fail "train backbone --local-views 2 exited non-zero"; }
grep -q "pre-training (contrastive, 2 local views)" "$WORK/mc.err" || { cat "$WORK/mc.err"; fail "no multi-crop summary"; }
out=$($T backbone --crops "$WORK/tree" --out "$WORK/mc" --epochs 2 --seed 3 --resume --local-views 3 "${COMMON[@]}" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "local_views = 2, this run has 3" || fail "resume with other --local-views: rc $rc, '$out'"
echo "ok: multi-crop backbone (--local-views); resume with another number refused"
# Labelled beans in the pre-training (--labelled-tree): drawn as train head draws them (here fold 0's
# training beans, half good), they join every step; a head trains on the result; a resume with other
# labelled beans is refused.
SUP=(--labelled-tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --fold 0 --supervised-batch 4)
$T backbone --crops "$WORK/tree" --out "$WORK/sup" --epochs 1 --seed 3 "${SUP[@]}" "${COMMON[@]}" >"$WORK/sup.out" 2>"$WORK/sup.err" \
  || { cat "$WORK/sup.err"; fail "train backbone --labelled-tree exited non-zero"; }
grep -q "^supervised part: 8 labelled beans, 8 usable photos (Black 4, Normal 4), 4 per step; good share 0.5" "$WORK/sup.err" \
  || { cat "$WORK/sup.err"; fail "no summary of the labelled part"; }
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --fold 0 --backbone "$WORK/sup/backbone.ckpt" --out "$WORK/sup.onnx" \
  --steps 5 --threads 1 >/dev/null 2>"$WORK/sup-head.err" || { cat "$WORK/sup-head.err"; fail "train head on a backbone with labels exited non-zero"; }
out=$($T backbone --crops "$WORK/tree" --out "$WORK/sup" --epochs 2 --seed 3 --resume --labelled-tree "$WORK/tree" --layout '{label}/{id}' \
  --labels 6 --fold 0 --supervised-batch 4 "${COMMON[@]}" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "checkpoint was made with supervised = 8 crops, batch 4, .*, this run has 6 crops, batch 4" \
  || fail "resume with other labelled beans: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/sup" --epochs 2 --seed 3 --resume "${COMMON[@]}" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "supervised = 8 crops, batch 4, .*, this run has none" || fail "resume without the labelled beans: rc $rc, '$out'"
echo "ok: backbone with labelled beans (--labelled-tree), a head on it; resumes with other or no labelled beans refused"

# --crop-size: a backbone pre-trained on 48×48 crops (with a stride-3 stem); train head takes that
# size from its checkpoint and exports a 48×48 encoder that the runtime and onnxruntime run alike;
# another size is refused, naming both.
$T backbone --crops "$WORK/tree48" --crop-size 48 --stem-stride 3 --out "$WORK/small" --epochs 1 --seed 3 "${COMMON[@]}" >/dev/null 2>"$WORK/small.err" \
  || { cat "$WORK/small.err"; fail "train backbone --crop-size 48 exited non-zero"; }
grep -q "pre-training (contrastive) on 12 crops" "$WORK/small.err" || { cat "$WORK/small.err"; fail "the 48-pixel photos were not taken as 12 crops"; }
$T head --tree "$WORK/tree48" --layout '{label}/{id}' --labels 8 --backbone "$WORK/small/backbone.ckpt" --out "$WORK/small.onnx" \
  --steps 5 --threads 1 >/dev/null 2>"$WORK/small-head.err" || { cat "$WORK/small-head.err"; fail "train head on a 48-pixel backbone exited non-zero"; }
"$PY" -c "
import numpy as np
np.save('$WORK/x48.npy', np.random.default_rng(5).normal(size=(3, 3, 48, 48)).astype(np.float32))" || fail "numpy"
"$BIN/beanctl" model run "$WORK/small.onnx" --input "$WORK/x48.npy" --output "$WORK/small.y.npy" >/dev/null || fail "beand's runtime cannot run the 48-pixel encoder"
"$PY" - "$WORK" <<'EOF' || fail "48-pixel encoder"
import sys
import numpy as np, onnxruntime as ort
w = sys.argv[1]
s = ort.InferenceSession(f"{w}/small.onnx", providers=["CPUExecutionProvider"])
assert list(s.get_inputs()[0].shape[1:]) == [3, 48, 48], s.get_inputs()[0].shape
ref = s.run(None, {s.get_inputs()[0].name: np.load(f"{w}/x48.npy")})[0]
err = np.abs(ref - np.load(f"{w}/small.y.npy")).max()
assert ref.shape == (3, 128) and err <= 1e-4, (ref.shape, err)
EOF
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --crop-size 64 --backbone "$WORK/small/backbone.ckpt" \
  --out "$WORK/bad.onnx" --threads 1 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "was pre-trained on 48×48 crops, this run cuts 64×64" || fail "head size unlike the backbone's: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --crop-size 8 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--crop-size must be 16…512, got 8" || fail "--crop-size 8: rc $rc, '$out'"
# The size from a config's camera (crop_size) when --crop-size is not given.
cat >"$WORK/cam48.toml" <<TOML
[[camera]]
name = "small"
source = "replay:$WORK/tree48"
crop_size = 48
TOML
$T crops --tree "$WORK/tree48" --config "$WORK/cam48.toml" --out "$WORK/crops48" --threads 1 >"$WORK/crops48.out" 2>"$WORK/crops48.err" \
  || { cat "$WORK/crops48.err"; fail "train crops with a crop_size 48 camera exited non-zero"; }
grep -q "^12 crops, 0 photos without a crop" "$WORK/crops48.out" || { cat "$WORK/crops48.out" "$WORK/crops48.err"; fail "the camera's crop_size 48 was not used"; }
# A crop cache holds one size: another size is refused, naming the cache, and the cache is kept.
$T crops --tree "$WORK/tree" --crop-cache "$WORK/c64.cache" --out "$WORK/crops64" --threads 1 >/dev/null 2>&1 || fail "train crops with a cache exited non-zero"
cp "$WORK/c64.cache" "$WORK/c64.before"
out=$($T crops --tree "$WORK/tree48" --crop-size 48 --crop-cache "$WORK/c64.cache" --out "$WORK/crops48b" --threads 1 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "c64.cache: not a crop cache of 48×48 crops (crop size differs); delete it to rebuild" \
  || fail "a 64-pixel cache read at 48: rc $rc, '$out'"
cmp -s "$WORK/c64.cache" "$WORK/c64.before" || fail "the refused run changed the crop cache"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --stem-stride 5 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--stem-stride must be 1…4, got 5" || fail "--stem-stride 5: rc $rc, '$out'"
echo "ok: --crop-size 48 --stem-stride 3 backbone and head, a 48×48 encoder; a camera's crop_size; another size, a cache of another size, --crop-size 8 and --stem-stride 5 refused"

# Head: one ONNX encoder + a store; the runtime and onnxruntime agree on it.
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 16 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/encoder.onnx" --store-out "$WORK/store" --steps 40 --threads 1 >"$WORK/head.out" 2>"$WORK/head.err" \
  || { cat "$WORK/head.err"; fail "train head exited non-zero"; }
grep -q "^store .* (.* vectors of 16 beans)" "$WORK/head.out" || { cat "$WORK/head.out"; fail "no store written"; }
"$BIN/beanctl" store info --store "$WORK/store" --json >"$WORK/store.json" 2>&1 || fail "beanctl store info cannot read the written store"
fingerprint=$(grep -o "fingerprint [0-9a-f]*" "$WORK/head.out" | awk '{print $2}')
"$PY" - "$WORK/store.json" "$fingerprint" <<'EOF2' || fail "the store does not match the encoder"
import json, sys
s = json.load(open(sys.argv[1]))
assert s["dimension"] == 128 and s["count"] == 16, s
assert s["fingerprint"] == sys.argv[2], (s["fingerprint"], sys.argv[2])
assert sorted(s["labels"]) == ["Black", "Normal"], s["labels"]
EOF2
"$PY" -c "
import numpy as np
np.save('$WORK/x.npy', np.random.default_rng(2).normal(size=(5, 3, 64, 64)).astype(np.float32))" || fail "numpy"
"$BIN/beanctl" model run "$WORK/encoder.onnx" --input "$WORK/x.npy" --output "$WORK/y.npy" >/dev/null || fail "beand's runtime cannot run the trained encoder"
"$PY" - "$WORK" <<'EOF' || fail "onnxruntime disagrees with beand's runtime"
import sys
import numpy as np, onnxruntime as ort
w = sys.argv[1]
x = np.load(f"{w}/x.npy"); ours = np.load(f"{w}/y.npy")
s = ort.InferenceSession(f"{w}/encoder.onnx", providers=["CPUExecutionProvider"])
ref = s.run(None, {s.get_inputs()[0].name: x})[0]
assert ref.shape == (5, 128), ref.shape
err = np.abs(ref - ours).max()
assert err <= 1e-4, f"max abs error {err}"
assert np.allclose(np.linalg.norm(ref, axis=1), 1, atol=1e-4), "rows are not unit length"
print(f"ok: encoder {ref.shape[1]}-d, runtime vs onnxruntime max abs error {err:.2e}")
EOF

# The other heads: multi-scale with trunk fine-tuning, multi-scale with the crop's own colour
# statistics, and the MLP head; all export encoders that onnxruntime runs with the runtime's outputs.
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 16 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/tuned.onnx" --steps 20 --fine-tune-steps 6 --threads 1 >"$WORK/tuned.out" 2>"$WORK/tuned.err" \
  || { cat "$WORK/tuned.err"; fail "train head --fine-tune-steps exited non-zero"; }
grep -q "fine-tune.*6 steps, cross-entropy" "$WORK/tuned.err" || { cat "$WORK/tuned.err"; fail "no fine-tuning summary"; }
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 16 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/mlp.onnx" --head mlp --steps 20 --threads 1 >"$WORK/mlp.out" 2>"$WORK/mlp.err" \
  || { cat "$WORK/mlp.err"; fail "train head --head mlp exited non-zero"; }
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 16 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/pooled.onnx" --pool-input --steps 20 --threads 1 >"$WORK/pooled.out" 2>"$WORK/pooled.err" \
  || { cat "$WORK/pooled.err"; fail "train head --pool-input exited non-zero"; }
# --good-share draws that share of the labelled beans from good beans; out of range is refused.
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --good-share 0.75 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/share.onnx" --steps 5 --threads 1 >"$WORK/share.out" 2>"$WORK/share.err" \
  || { cat "$WORK/share.err"; fail "train head --good-share exited non-zero"; }
grep -q "^head: 8 labelled beans, 8 usable photos (Black 2, Normal 6); good share 0.75" "$WORK/share.err" \
  || { cat "$WORK/share.err"; fail "--good-share 0.75 of 8 beans did not give 6 good beans"; }
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --good-share 2 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/bad.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "good-share must be a share from 0 to 1 or 'proportional', got 2.0" || fail "--good-share 2: rc $rc, '$out'"
echo "ok: --good-share 0.75 gives 6 good of 8 labelled beans; --good-share 2 refused"
# The patch-novelty coordinate (--patch-novelty): the encoder stays 128-d, holds the novelty
# nodes, and onnxruntime runs it with the runtime's outputs; the default head has no such nodes.
# With no good bean among the labelled ones it cannot be fitted, and the error says how to turn it
# off; the mlp head refuses it.
$T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 16 --patch-novelty 50 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/novelty.onnx" --steps 5 --threads 1 >"$WORK/novelty.out" 2>"$WORK/novelty.err" \
  || { cat "$WORK/novelty.err"; fail "train head --patch-novelty 50 exited non-zero"; }
grep -Eq "^patch novelty: bank of 50 patches from [0-9]+ good photos" "$WORK/novelty.out" || { cat "$WORK/novelty.out"; fail "no patch-novelty summary"; }
"$BIN/beanctl" model run "$WORK/novelty.onnx" --input "$WORK/x.npy" --output "$WORK/novelty.y.npy" >/dev/null || fail "beand's runtime cannot run novelty.onnx"
"$PY" - "$WORK" <<'EOF' || fail "patch-novelty encoder"
import sys
import numpy as np, onnx, onnxruntime as ort
w = sys.argv[1]
ops = [n.op_type for n in onnx.load(f"{w}/novelty.onnx").graph.node]
assert ops.count("ReduceMax") == 2, "the patch-novelty nodes (ReduceMax over the bank, then the positions) are missing"
assert "ReduceMax" not in [n.op_type for n in onnx.load(f"{w}/encoder.onnx").graph.node], "the default head has novelty nodes"
x = np.load(f"{w}/x.npy"); ours = np.load(f"{w}/novelty.y.npy")
s = ort.InferenceSession(f"{w}/novelty.onnx", providers=["CPUExecutionProvider"])
ref = s.run(None, {s.get_inputs()[0].name: x})[0]
err = np.abs(ref - ours).max()
assert ref.shape == (5, 128) and err <= 1e-4, (ref.shape, err)
print(f"ok: patch-novelty encoder {ref.shape[1]}-d, runtime vs onnxruntime max abs error {err:.2e}")
EOF
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --good-share 0 --patch-novelty 50 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/nogood.onnx" --steps 5 --threads 1 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "patch novelty needs labelled good beans: none among the .* (--patch-novelty 0 turns it off)" \
  || fail "no good beans with the novelty coordinate: rc $rc, '$out'"
[ -e "$WORK/nogood.onnx" ] && fail "a refused head run still wrote its encoder"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --head mlp --patch-novelty 10 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/bad.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "patch-novelty applies to --head multi-scale" || fail "--head mlp --patch-novelty: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 8 --patch-novelty 10 --novelty-weight 0 --backbone "$WORK/straight/backbone.ckpt" \
  --out "$WORK/bad.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "patch-novelty bank must be ≥ 0 patches and its weight positive, got 10, 0.0" || fail "--novelty-weight 0: rc $rc, '$out'"
echo "ok: no good beans, the mlp head or a zero weight refused with --patch-novelty"
for m in tuned mlp pooled; do
  "$BIN/beanctl" model run "$WORK/$m.onnx" --input "$WORK/x.npy" --output "$WORK/$m.y.npy" >/dev/null || fail "beand's runtime cannot run $m.onnx"
done
"$PY" - "$WORK" <<'EOF' || fail "onnxruntime disagrees with beand's runtime on the other heads"
import sys
import numpy as np, onnxruntime as ort
w = sys.argv[1]
x = np.load(f"{w}/x.npy")
first = np.load(f"{w}/y.npy")
for m in ("tuned", "mlp", "pooled"):
    ours = np.load(f"{w}/{m}.y.npy")
    s = ort.InferenceSession(f"{w}/{m}.onnx", providers=["CPUExecutionProvider"])
    ref = s.run(None, {s.get_inputs()[0].name: x})[0]
    err = np.abs(ref - ours).max()
    assert ref.shape == (5, 128) and err <= 1e-4, (m, ref.shape, err)
    print(f"ok: {m} encoder, runtime vs onnxruntime max abs error {err:.2e}")
# Fine-tuning changed the trunk: its embeddings differ from the frozen-trunk head's.
assert np.abs(np.load(f"{w}/tuned.y.npy") - first).max() > 1e-3
EOF
# An ensemble of two encoders (beanctl model combine): onnxruntime runs it with the runtime's outputs,
# which are the members' embeddings side by side at unit length; another crop size or a single
# member is refused.
out=$("$BIN/beanctl" model combine "$WORK/encoder.onnx" "$WORK/pooled.onnx" --out "$WORK/ensemble.onnx" 2>&1) \
  || fail "model combine exited non-zero: '$out'"
out_has "of 2 encoders (256-d" || fail "model combine did not report a 256-d ensemble: '$out'"
"$BIN/beanctl" model run "$WORK/ensemble.onnx" --input "$WORK/x.npy" --output "$WORK/ensemble.y.npy" >/dev/null \
  || fail "beand's runtime cannot run the ensemble"
"$PY" - "$WORK" <<'EOF' || fail "the ensemble's outputs are not its members' side by side, or onnxruntime disagrees"
import sys
import numpy as np, onnxruntime as ort
w = sys.argv[1]
x = np.load(f"{w}/x.npy")
ours = np.load(f"{w}/ensemble.y.npy")
s = ort.InferenceSession(f"{w}/ensemble.onnx", providers=["CPUExecutionProvider"])
ref = s.run(None, {s.get_inputs()[0].name: x})[0]
members = np.concatenate([np.load(f"{w}/y.npy"), np.load(f"{w}/pooled.y.npy")], axis=1) / np.sqrt(2)
err, joined = np.abs(ref - ours).max(), np.abs(members - ours).max()
assert ref.shape == (5, 256) and err <= 1e-4 and joined <= 1e-4, (ref.shape, err, joined)
print(f"ok: ensemble 256-d, runtime vs onnxruntime max abs error {err:.2e}, vs its members {joined:.2e}")
EOF
out=$("$BIN/beanctl" model combine "$WORK/encoder.onnx" "$WORK/small.onnx" --out "$WORK/mixed.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "small.onnx takes input \[3, 48, 48\], .*encoder.onnx takes \[3, 64, 64\]" || fail "combine of 64- and 48-pixel encoders: rc $rc, '$out'"
[ ! -e "$WORK/mixed.onnx" ] || fail "a refused combine wrote its output"
out=$("$BIN/beanctl" model combine "$WORK/encoder.onnx" --out "$WORK/one.onnx" 2>&1); rc=$?
[ $rc -eq 64 ] && out_has "at least two encoders" || fail "combine of one encoder: rc $rc, '$out'"
echo "ok: model combine refuses another crop size and a single member"

# Bad input.
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/straight/backbone.ckpt" --out "$WORK/e.onnx" --head mlp --fine-tune-steps 5 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--fine-tune-steps applies to --head multi-scale" || fail "--head mlp --fine-tune-steps: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/straight/backbone.ckpt" --out "$WORK/e.onnx" --freeze-trunk 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "apply to --head mlp only" || fail "multi-scale --freeze-trunk: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/straight/backbone.ckpt" --out "$WORK/e.onnx" --head wide 2>&1); rc=$?
[ $rc -eq 64 ] && out_has "wide" || fail "--head wide: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/straight/backbone.ckpt" --out "$WORK/e.onnx" --head mlp --pool-input 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--pool-input applies to --head multi-scale" || fail "--head mlp --pool-input: rc $rc, '$out'"
mkdir -p "$WORK/empty"
out=$($T backbone --crops "$WORK/empty" --out "$WORK/x" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "empty: no JPEG or PNG images" || fail "empty crop dir: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --zoom=-1 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--zoom must be 0…3" || fail "--zoom -1: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --rotate 200 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--rotate must be 0…180 degrees" || fail "--rotate 200: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --brightness 1.5 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--brightness must be in \[0, 1)" || fail "--brightness 1.5: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --colour=-0.1 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--colour must be in \[0, 1)" || fail "--colour -0.1: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --temperature 0 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--temperature must be 0.01…10" || fail "--temperature 0: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --local-views 9 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--local-views must be 0…8, got 9" || fail "--local-views 9: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --objective cutpaste --local-views 2 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--local-views applies to --objective contrastive, not cutpaste" || fail "cutpaste --local-views: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labels 8 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--labels needs --labelled-tree" || fail "--labels without --labelled-tree: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labelled-tree "$WORK/tree" 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--labelled-tree needs --labels N" || fail "--labelled-tree without --labels: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labelled-tree "$WORK/tree" --labels 8 --objective cutpaste 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--labelled-tree needs --objective contrastive without --local-views, got cutpaste" \
  || fail "--labelled-tree with cutpaste: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labelled-tree "$WORK/tree" --labels 8 --fold 5 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--fold must be 0…4, got 5" || fail "--fold 5: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labelled-tree "$WORK/tree" --labels 8 --supervised-batch 1 2>&1); rc=$?
[ $rc -ne 0 ] && out_has -- "--supervised-batch must be 2…256, got 1" || fail "--supervised-batch 1: rc $rc, '$out'"
out=$($T backbone --crops "$WORK/tree" --out "$WORK/x" --labelled-tree "$WORK/no-such-tree" --labels 8 --layout '{label}/{id}' 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "no-such-tree" || fail "missing --labelled-tree: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 0 --backbone "$WORK/straight/backbone.ckpt" --out "$WORK/e.onnx" 2>&1); rc=$?
[ $rc -eq 64 ] && out_has -- "--labels must be at least 1" || fail "--labels 0: rc $rc, '$out'"
head -c 100 "$WORK/straight/backbone.ckpt" >"$WORK/truncated.ckpt"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/truncated.ckpt" --out "$WORK/e.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "truncated.ckpt" || fail "truncated checkpoint: rc $rc, '$out'"
out=$($T head --tree "$WORK/tree" --layout '{label}/{id}' --labels 4 --backbone "$WORK/missing.ckpt" --out "$WORK/e.onnx" 2>&1); rc=$?
[ $rc -ne 0 ] && out_has "missing.ckpt" || fail "missing checkpoint: rc $rc, '$out'"
[ ! -e "$WORK/e.onnx" ] || fail "a failed run left an encoder behind"
echo "ok: bad input refused with reasons"
echo "PASS"
