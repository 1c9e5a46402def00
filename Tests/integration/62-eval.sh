#!/usr/bin/env bash
# beanctl eval on the real Mindforge photos (skipped when ../shared/data/mindforge is absent): fold
# mode with the raw-pixel encoder on a seeded subset, vote and one-class; the JSON figures are
# recomputed with numpy from the per-bean scores (ROC AUC, defect recall at 1/3/5 % good rejected,
# F1 of the verdicts, per-fold AUC) and from the confusion matrix (per-class F1, macro F1); the
# PNG plots are decoded; --good-share puts that share of good beans in each fold's store. Bad
# options fail with a message.
set -uo pipefail
ROOT="${BEAND_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}"
BIN="${BEAND_BIN:-$ROOT/.build/debug}"
PY="${BEAND_PY:-}"; [ -x "$PY" ] || PY=python3
CTL="$BIN/beanctl"
DATA="$ROOT/../shared/data/mindforge"
[ -x "$CTL" ] || { echo "62-eval: $CTL missing (swift build first)"; exit 1; }
[ -d "$DATA" ] || { echo "SKIP: $DATA absent (the Mindforge photos live beside the project)"; exit 77; }
"$PY" -c "import numpy" 2>/dev/null || { echo "SKIP: numpy missing for $PY (run Deploy/install-deps.sh)"; exit 77; }
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
fail=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fail=1; fi; }

common=(--tree "$DATA" --folds 5 --labels-per-fold 100 --encoder raw:16 --preset mindforge --limit-beans 300
        --seed 3 --cache "$tmp/cache.npy" --quiet --json)
"$CTL" eval "${common[@]}" --mode vote --scores "$tmp/vote.csv" --out "$tmp/vote" >"$tmp/vote.json" 2>"$tmp/err"
check "eval --mode vote (folds) exits 0" '[ $? -eq 0 ] || { cat "$tmp/err"; false; }'
"$CTL" eval "${common[@]}" --one-class --scores "$tmp/oc.csv" >"$tmp/oc.json" 2>"$tmp/err"
check "eval (one-class, folds, from the cache) exits 0" '[ $? -eq 0 ] || { cat "$tmp/err"; false; }'
check "cache written beside its description" '[ -s "$tmp/cache.npy" ] && [ -s "$tmp/cache.npy.json" ]'
# No --mode and no -k: the daemon's default, score mode over 64 neighbours.
"$CTL" eval "${common[@]}" --scores "$tmp/score.csv" >"$tmp/score.json" 2>"$tmp/err"
check "eval with the default policy (score mode) exits 0" '[ $? -eq 0 ] || { cat "$tmp/err"; false; }'
"$CTL" eval "${common[@]}" --good-share 0.3 >"$tmp/share.json" 2>"$tmp/err"
check "eval --good-share 0.3 exits 0" '[ $? -eq 0 ] || { cat "$tmp/err"; false; }'
"$CTL" eval "${common[@]}" --good-share proportional >"$tmp/prop.json" 2>"$tmp/err"
check "eval --good-share proportional exits 0" '[ $? -eq 0 ] || { cat "$tmp/err"; false; }'

"$PY" - "$tmp" <<'PY'
import json, sys, zlib, struct, csv
import numpy as np
d = sys.argv[1]
bad = []
def close(a, b, what, tol=1e-9):
    if a is None or b is None:
        if a is not b: bad.append(f"{what}: {a} vs {b}")
    elif abs(a - b) > tol:
        bad.append(f"{what}: json {a} vs numpy {b}")

def auc(defect, good):
    if len(defect) == 0 or len(good) == 0: return None
    dd, gg = defect[:, None], good[None, :]
    return float(((dd > gg).sum() + 0.5 * (dd == gg).sum()) / (len(defect) * len(good)))

def recall_at(defect, good, rate):
    allowed = int(np.floor(rate * len(good) + 1e-9))
    t = -np.inf if allowed >= len(good) else np.sort(good)[::-1][allowed]
    return float((defect > t).mean()), float((good > t).mean())

for name in ("vote", "oc"):
    report = json.load(open(f"{d}/{name}.json"))
    rows = list(csv.DictReader(open(f"{d}/{name}.csv")))
    score = np.array([float(r["score"]) for r in rows])
    defect = np.array([r["defect"] == "1" for r in rows])
    rejected = np.array([r["rejected"] == "1" for r in rows])
    fold = np.array([int(r["fold"]) for r in rows])
    for key in ("f1", "roc_auc", "recall_at_good_rejected", "macro_f1", "per_class", "counts", "confusion", "folds"):
        if key not in report: bad.append(f"{name}: key {key} missing")
    if report["counts"]["beans"] != len(rows): bad.append(f"{name}: {report['counts']['beans']} beans vs {len(rows)} CSV rows")
    if report["counts"]["good_beans"] != int((~defect).sum()): bad.append(f"{name}: good bean count")
    close(report["roc_auc"], auc(score[defect], score[~defect]), f"{name} roc_auc")
    for key, rate in (("0.01", 0.01), ("0.03", 0.03), ("0.05", 0.05)):
        r, g = recall_at(score[defect], score[~defect], rate)
        close(report["recall_at_good_rejected"][key], r, f"{name} recall at {key}")
        close(report["good_rejected_at"][key], g, f"{name} good rejected at {key}")
        if g > rate + 1e-12: bad.append(f"{name}: {g} good rejected exceeds {rate}")
    tp = int((rejected & defect).sum()); fp = int((rejected & ~defect).sum()); fn = int((~rejected & defect).sum())
    close(report["f1"], 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0, f"{name} f1")
    folds = report["folds"]
    if sorted(set(fold.tolist())) != list(range(folds["k"])): bad.append(f"{name}: folds in CSV {sorted(set(fold.tolist()))}")
    for pf in folds["per_fold"]:
        m = fold == pf["fold"]
        close(pf["roc_auc"], auc(score[m & defect], score[m & ~defect]), f"{name} fold {pf['fold']} auc")
        if pf["test_beans"] != int(m.sum()): bad.append(f"{name}: fold {pf['fold']} test beans")
        if pf["store_beans"] > 100: bad.append(f"{name}: fold {pf['fold']} store has {pf['store_beans']} beans > 100")
    # Per-class figures and macro F1 from the confusion matrix.
    conf = report["confusion"]; counts = np.array(conf["counts"])
    f1s = []
    for i, label in enumerate(conf["true"]):
        j = conf["predicted"].index(label)
        tpc = counts[i, j]; support = counts[i].sum(); predicted = counts[:, j].sum()
        f1 = 2 * tpc / (support + predicted) if support + predicted else 0.0
        f1s.append(f1)
        pc = report["per_class"][label]
        close(pc["f1"], f1, f"{name} {label} f1")
        close(pc["recall"], tpc / support if support else 0.0, f"{name} {label} recall")
        close(pc["precision"], tpc / predicted if predicted else 0.0, f"{name} {label} precision")
        if pc["support"] != support: bad.append(f"{name} {label} support")
    close(report["macro_f1"], float(np.mean(f1s)), f"{name} macro_f1")
    # Per fold: each fold's confusion gives its macro F1, and the folds' confusions add up to the pooled one.
    summed = {}
    for pf in folds["per_fold"]:
        fc = pf["confusion"]; fcounts = np.array(fc["counts"]); ff1 = []
        for i, label in enumerate(fc["true"]):
            j = fc["predicted"].index(label) if label in fc["predicted"] else None
            tpc = fcounts[i, j] if j is not None else 0; support = fcounts[i].sum(); predicted = fcounts[:, j].sum() if j is not None else 0
            ff1.append(2 * tpc / (support + predicted) if support + predicted else 0.0)
            for jj, pl in enumerate(fc["predicted"]): summed[(label, pl)] = summed.get((label, pl), 0) + int(fcounts[i, jj])
        close(pf["macro_f1"], float(np.mean(ff1)), f"{name} fold {pf['fold']} macro_f1")
        fd = [f for label, f in zip(fc["true"], ff1) if label != "Normal"]
        close(pf["macro_f1_defect_labels"], float(np.mean(fd)) if fd else None, f"{name} fold {pf['fold']} macro_f1_defect_labels")
    pooled = {(t, p): int(counts[i, j]) for i, t in enumerate(conf["true"]) for j, p in enumerate(conf["predicted"]) if counts[i, j]}
    if {k: v for k, v in summed.items() if v} != pooled: bad.append(f"{name}: per-fold confusions do not add up to the pooled one")
    defect_f1s = [f for label, f in zip(conf["true"], f1s) if label != "Normal"]
    close(report["macro_f1_defect_labels"], float(np.mean(defect_f1s)), f"{name} macro_f1_defect_labels")
    if counts.sum() != report["counts"]["photos_used"]: bad.append(f"{name}: confusion total {counts.sum()} vs photos used")
    print(f"{name}: beans {len(rows)}, auc {report['roc_auc']:.3f}, recall@3% {report['recall_at_good_rejected']['0.03']:.3f}, macro F1 {report['macro_f1']:.3f}")

# The daemon's own policy at each rate: a bean is rejected when its decision score (vote mode:
# the largest defect-label share; score mode: the reject score over k) reaches the policy's
# reject share, so the CSV's decision_score gives back the verdicts, and the reported share for
# each rate follows the documented rule (smallest multiple of 0.001 that the
# (floor(r*good)+1)-th highest good decision score does not reach).
for name in ("vote", "score"):
    report = json.load(open(f"{d}/{name}.json"))
    rows = list(csv.DictReader(open(f"{d}/{name}.csv")))
    dscore = np.array([float(r["decision_score"]) for r in rows])
    vdefect = np.array([r["defect"] == "1" for r in rows])
    vrejected = np.array([r["rejected"] == "1" for r in rows])
    if report["policy"]["mode"] != name: bad.append(f"{name}: policy mode {report['policy']['mode']}")
    if report["policy"]["k"] != {"vote": 5, "score": 64}[name]: bad.append(f"{name}: default k {report['policy']['k']}")
    if not np.array_equal(dscore + 1e-12 >= report["policy"]["reject_share"], vrejected):
        bad.append(f"{name}: decision_score does not give back the policy's verdicts")
    if name == "score":
        # Score mode with k = 64 decides by eval's own reject score.
        score = np.array([float(r["score"]) for r in rows])
        if report["score_k"] != 64 or np.abs(score - dscore).max() > 1e-12: bad.append("score mode: decision score is not eval's score")
    at = report["reject_share_at_good_rejected"]
    for key, rate in (("0.01", 0.01), ("0.03", 0.03), ("0.05", 0.05)):
        good = np.sort(dscore[~vdefect])[::-1]
        allowed = int(np.floor(rate * len(good) + 1e-9))
        kept = good[allowed]
        step = int(np.floor(kept / 0.001))
        while kept + 1e-12 >= step * 0.001: step += 1
        expected = step * 0.001 if step * 0.001 <= 1 + 1e-12 else None
        close(at[key]["reject_share"], expected, f"{name}: reject share at {key}")
        if expected is not None:
            r = float((dscore[vdefect] + 1e-12 >= at[key]["reject_share"]).mean())
            g = float((dscore[~vdefect] + 1e-12 >= at[key]["reject_share"]).mean())
            close(at[key]["recall"], r, f"{name}: recall at {key}")
            close(at[key]["good_rejected"], g, f"{name}: good rejected at {key}")
            if g > rate + 1e-12: bad.append(f"{name}: {g} good rejected exceeds {rate}")
    for pf in report["folds"]["per_fold"]:
        if set(pf["reject_share_at_good_rejected"]) != {"0.01", "0.03", "0.05"}: bad.append(f"{name} fold {pf['fold']}: reject shares")
    print(f"{name}: reject share at 3 % {at['0.03']['reject_share']}, recall {at['0.03']['recall']}")

oc = json.load(open(f"{d}/oc.json"))
if oc["reject_share_at_good_rejected"] is not None: bad.append("one-class: reject_share_at_good_rejected is not null")
if any(r["decision_score"] != "" for r in csv.DictReader(open(f"{d}/oc.csv"))): bad.append("one-class: decision_score not empty")
# --good-share: each fold's store holds 100 beans, 30 of them good with 0.3, half of them by
# default (all the good beans of the training folds when fewer), good beans in proportion (about
# a fifth of these beans) with 'proportional'; the folds are the same either way.
share, vote, prop = (json.load(open(f"{d}/{n}.json")) for n in ("share", "vote", "prop"))
if (share["folds"]["good_share"], vote["folds"]["good_share"], prop["folds"]["good_share"]) != (0.3, 0.5, "proportional"):
    bad.append("folds.good_share")
vote_rows = list(csv.DictReader(open(f"{d}/vote.csv")))
for h, v, p in zip(share["folds"]["per_fold"], vote["folds"]["per_fold"], prop["folds"]["per_fold"]):
    if (h["store_beans"], h["store_good_beans"]) != (100, 30): bad.append(f"good share: fold {h['fold']} store {h['store_beans']}/{h['store_good_beans']}")
    good_outside = sum(1 for r in vote_rows if r["defect"] == "0" and int(r["fold"]) != v["fold"])
    if (v["store_beans"], v["store_good_beans"]) != (100, min(50, good_outside)):
        bad.append(f"default share: fold {v['fold']} store {v['store_beans']}/{v['store_good_beans']}, {good_outside} good beans outside")
    if not 10 <= p["store_good_beans"] <= 35: bad.append(f"proportional: fold {p['fold']} has {p['store_good_beans']} good beans")
    if h["test_beans"] != v["test_beans"]: bad.append(f"fold {h['fold']}: test beans differ with --good-share")
if oc["policy"]["mode"] != "one-class" or oc["folds"]["store"] != "good beans only": bad.append("one-class run settings")

def png_size_and_spread(path):
    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR": w, h, depth, colour = struct.unpack(">IIBB", body[:10])
        if kind == b"IDAT": idat += body
        pos += 12 + n
    raw = zlib.decompress(idat)
    assert depth == 8 and colour == 2 and len(raw) == h * (1 + 3 * w), (path, depth, colour, len(raw))
    return w, h, len(set(raw))

for plot in ("roc.png", "pr.png", "confusion.png"):
    w, h, distinct = png_size_and_spread(f"{d}/vote/{plot}")
    if w < 300 or h < 300 or distinct < 5: bad.append(f"{plot}: {w}x{h}, {distinct} distinct bytes")
saved = json.load(open(f"{d}/vote/report.json"))
if saved["roc_auc"] != json.load(open(f"{d}/vote.json"))["roc_auc"]: bad.append("report.json differs from --json")

for b in bad: print("MISMATCH", b)
sys.exit(1 if bad else 0)
PY
check "JSON figures match numpy recomputation; PNGs decode" '[ $? -eq 0 ]'

"$CTL" eval --tree "$DATA" --folds 5 --encoder raw --mode one-class --limit-beans 20 >/dev/null 2>"$tmp/err"
check "--mode one-class refused, pointing to --one-class" '[ $? -ne 0 ] && grep -q "give --one-class" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --encoder raw --mode majority --limit-beans 20 >/dev/null 2>"$tmp/err"
check "--mode majority refused" '[ $? -ne 0 ] && grep -q "majority" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 1 --encoder raw >/dev/null 2>"$tmp/err"
check "--folds 1 refused" '[ $? -ne 0 ] && grep -q "at least 2" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --encoder raw:0 --limit-beans 20 --quiet >/dev/null 2>"$tmp/err"
check "--encoder raw:0 refused" '[ $? -ne 0 ] && grep -q "size must be" "$tmp/err"'
"$CTL" eval --tree "$tmp/missing" --folds 5 --encoder raw >/dev/null 2>"$tmp/err"
check "missing tree named" '[ $? -ne 0 ] && grep -q "$tmp/missing: not a directory" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --encoder "$tmp/nothing.onnx" --limit-beans 20 --quiet >/dev/null 2>"$tmp/err"
check "missing encoder file named" '[ $? -ne 0 ] && grep -q "nothing.onnx" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --encoder raw --store "$tmp" >/dev/null 2>"$tmp/err"
check "--store with --folds refused" '[ $? -ne 0 ] && grep -q "fixed mode" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --labels-per-fold 50 --good-share 1.5 --encoder raw >/dev/null 2>"$tmp/err"
check "--good-share 1.5 refused" '[ $? -ne 0 ] && grep -q "good-share must be a share from 0 to 1 or .proportional., got 1.5" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --labels-per-fold 50 --good-share half --encoder raw >/dev/null 2>"$tmp/err"
check "--good-share half refused naming the option" '[ $? -ne 0 ] && grep -q "value .half. is invalid for .--good-share" "$tmp/err"'
"$CTL" eval --tree "$DATA" --folds 5 --good-share 0.5 --encoder raw >/dev/null 2>"$tmp/err"
check "--good-share without --labels-per-fold refused" '[ $? -ne 0 ] && grep -q "needs --labels-per-fold" "$tmp/err"'
exit $fail
