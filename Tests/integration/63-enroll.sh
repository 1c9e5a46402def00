#!/usr/bin/env bash
# beanctl enroll on real Mindforge photos (skipped when ../shared/data/mindforge is absent) with
# the demo stand-in encoder: a small labelled tree into a fresh store (a photo without a bean and
# an unreadable file skipped with reasons), a rerun skips everything as already enrolled and
# publishes nothing, a running beand picks up the generation the next enroll publishes (status
# shows it), a store made by another encoder is refused with BeanStore's message, and beanctl
# eval in fixed mode scores a tree against the enrolled store.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-}"; [ -x "$PY" ] || PY=python3
DATA="$ROOT/../shared/data/mindforge"
[ -x "$BIN/beanctl" ] && [ -x "$BIN/beand" ] || { echo "63-enroll: beanctl or beand missing in $BIN (swift build first)"; exit 1; }
[ -d "$DATA" ] || { echo "SKIP: $DATA absent (the Mindforge photos live beside the project)"; exit 77; }
export BEAND_BIN="$BIN"
exec "$PY" - "$ROOT" "$DATA" <<'PY'
import json, os, subprocess, sys, time, zlib, struct
sys.path.insert(0, os.path.join(sys.argv[1], "Tests/service-harness"))
from harness import *
ROOT, DATA = sys.argv[1], sys.argv[2]
BEANCTL = os.path.join(os.environ["BEAND_BIN"], "beanctl")
ENCODER = os.path.join(ROOT, "Config/demo/encoder.onnx")

def run(*args, ok=True):
    r = subprocess.run([BEANCTL, *args], capture_output=True, text=True, timeout=300)
    if ok and r.returncode != 0:
        fail("beanctl %s exited %d: %s" % (" ".join(args), r.returncode, r.stderr.strip()[-2000:]))
    return r

def photos(cls, n, side="U", batch="1st"):
    folder = os.path.join(DATA, batch, cls, side)
    return [os.path.join(folder, f) for f in sorted(os.listdir(folder))[:n]]

def blank_png(path, w=640, h=480):
    raw = b"".join(b"\x00" + bytes([20, 20, 20]) * w for _ in range(h))
    def chunk(t, d): return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

with TempDir() as d:
    tree = os.path.join(d, "tree")
    for cls in ("Normal", "Black"):
        os.makedirs(os.path.join(tree, cls))
        for i, p in enumerate(photos(cls, 3)):
            os.symlink(p, os.path.join(tree, cls, "%s-%d.jpg" % (cls, i)))
    blank_png(os.path.join(tree, "Normal", "empty.png"))
    with open(os.path.join(tree, "Black", "garbage.jpg"), "wb") as f:
        f.write(os.urandom(2000))
    store = os.path.join(d, "store")
    args = ["--tree", tree, "--layout", "{label}/{id}", "--model", ENCODER, "--store", store, "--preset", "mindforge"]

    r = run("enroll", *args, "--json", "--author", "tester")
    s = json.loads(r.stdout)
    check(s["added"] == 6 and s["generation"] == 1 and s["vectors"] == 6, "fresh store: 6 photos added in generation 1: %s" % r.stdout)
    check(s["labels"]["Normal"]["no_bean"] == 1 and s["labels"]["Black"]["unreadable"] == 1, "no-bean photo and unreadable file counted per label")
    reasons = {os.path.basename(x["path"]): x for x in s["skipped"]}
    check(reasons["empty.png"]["reason"] == "no_bean" and "no bean found" in reasons["empty.png"]["detail"], "no bean: reason given")
    check(reasons["garbage.jpg"]["reason"] == "unreadable" and "neither JPEG nor PNG" in reasons["garbage.jpg"]["detail"], "unreadable: reason given")
    info = json.loads(run("store", "info", "--store", store, "--json").stdout)
    check(info["labels"] == {"Normal": 3, "Black": 3} and info["dimension"] == 32, "store holds the labels and the encoder's dimension: %s" % info["labels"])
    model = json.loads(run("model", "info", ENCODER, "--json").stdout)
    check(info["fingerprint"] == model["fingerprint"], "store takes the encoder's fingerprint")
    exported = os.path.join(d, "exp")
    run("store", "export", "--store", store, "--output", exported)
    lines = open(exported + ".labels.csv").read().splitlines()[1:]
    check(all(l.endswith(",tester") for l in lines) and len({l.split(",")[2] for l in lines}) == 6, "author and distinct content-hash source ids per vector")

    r = run("enroll", *args)
    check("nothing added" in r.stdout and "already enrolled" in r.stdout, "rerun: nothing added, reported as already enrolled")
    check(json.loads(run("store", "info", "--store", store, "--json").stdout)["generation"] == 1, "rerun publishes no generation")
    r = run("enroll", *args, "--json")
    s = json.loads(r.stdout)
    check(s["labels"]["Normal"]["already_enrolled"] == 3 and s["labels"]["Black"]["already_enrolled"] == 3 and s["added"] == 0, "rerun: all 6 already enrolled")

    # A running beand watches the store; the next enroll's generation shows in status.
    cfg = write_config(d, extra=f"""[store]
path = "{store}"
[encoder]
model = "{ENCODER}"
workers = 1
[[camera]]
name = "belt0"
source = "belt:{ROOT}/Config/demo/belt.png"
width = 640
height = 360
segmentation = "mindforge"
""")
    with Daemon(cfg) as daemon:
        daemon.wait_ready(timeout=30)
        def store_status():
            return request(daemon.control, {"command": "status"})["result"]["store"]
        deadline = time.monotonic() + 10
        while store_status().get("generation") != 1 and time.monotonic() < deadline:
            time.sleep(0.1)
        check(store_status()["generation"] == 1, "beand serves generation 1: %s" % store_status())
        fissures = photos("Fissure", 2)
        r = run("enroll", "--config", cfg, "--preset", "mindforge", "--label", "Fissure", *fissures)
        check("published generation 2" in r.stdout, "enroll --label through the config publishes generation 2")
        deadline = time.monotonic() + 10
        while store_status().get("generation") != 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        st = store_status()
        check(st["generation"] == 2 and st["vectors"] == 8, "beand picked up generation 2 without a reload: %s" % st)
        code, _ = daemon.stop()
        check(code == 0, "beand exits 0")

    # Another encoder's store.
    other = os.path.join(d, "other")
    import array
    with open(os.path.join(d, "v.npy"), "wb") as f:
        header = "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 32), }"
        header += " " * (63 - (10 + len(header)) % 64) + "\n"
        f.write(b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header.encode() + array.array("f", [1.0] * 32).tobytes())
    with open(os.path.join(d, "l.txt"), "w") as f:
        f.write("Normal\n")
    run("store", "add", "--store", other, "--vectors", os.path.join(d, "v.npy"), "--labels", os.path.join(d, "l.txt"), "--fingerprint", "another-encoder")
    r = run("enroll", "--label", "Normal", photos("Normal", 1)[0], "--model", ENCODER, "--store", other, "--preset", "mindforge", ok=False)
    check(r.returncode == 1 and 'made for encoder "another-encoder"' in r.stderr, "another encoder's store refused with BeanStore's message: %s" % r.stderr.strip())
    check(json.loads(run("store", "info", "--store", other, "--json").stdout)["generation"] == 1, "refused store unchanged")

    # Bad input.
    r = run("enroll", "--label", "bad label", photos("Normal", 1)[0], "--model", ENCODER, "--store", store, ok=False)
    check(r.returncode != 0 and "not a label name" in r.stderr, "label with a space refused")
    r = run("enroll", "--label", "Normal", "--model", ENCODER, "--store", store, ok=False)
    check(r.returncode != 0 and "at least one photo" in r.stderr, "--label without photos refused")

    # Fixed-mode eval against the enrolled store: a held-out mini tree in the Mindforge layout.
    held = os.path.join(d, "held")
    for cls in ("Normal", "Black"):
        for side in ("U", "D"):
            os.makedirs(os.path.join(held, "1st", cls, side))
            for p in photos(cls, 8, side)[4:]:
                os.symlink(p, os.path.join(held, "1st", cls, side, os.path.basename(p)))
    blank_png(os.path.join(held, "1st", "Normal", "U", "empty.png"))
    with open(os.path.join(held, "1st", "Normal", "U", "garbage.jpg"), "wb") as f:
        f.write(b"\xff\xd8\xff" + os.urandom(500))
    r = run("eval", "--tree", held, "--model", ENCODER, "--store", store, "--preset", "mindforge", "--json", "--quiet")
    e = json.loads(r.stdout)
    check(e["mode"] == "fixed" and e["store"]["generation"] == 2 and e["counts"]["beans"] == 8, "fixed-mode eval over 8 held-out beans: %s" % e["counts"])
    check(e["skipped"]["no_bean"] == 1 and e["skipped"]["unreadable"] == 1 and e["skipped"]["beans_without_usable_crop"] == 2,
          "eval counts the photo without a bean and the corrupt JPEG: %s" % e["skipped"])
    check(all(k in e for k in ("f1", "roc_auc", "recall_at_good_rejected", "macro_f1", "per_class")) and set(e["recall_at_good_rejected"]) == {"0.01", "0.03", "0.05"}, "fixed-mode JSON keys")
    r = run("eval", "--tree", held, "--model", ENCODER, "--store", other, "--preset", "mindforge", ok=False)
    check(r.returncode == 1 and "another-encoder" in r.stderr, "fixed-mode eval refuses another encoder's store")
print("63-enroll: all checks passed")
PY
