#!/usr/bin/env bash
# beanctl store add/search/export/remove against a float64 numpy brute force: same ids (ties broken
# by lower id), distances within float32 rounding; plus the bad-input refusals of the changing
# commands. Real embeddings are compared too when Tests/data/embeddings.npy exists.
set -euo pipefail
: "${BEAND_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BEAND_BIN:=$BEAND_ROOT/.build/debug}"
: "${BEAND_PY:=$BEAND_ROOT/.venv/bin/python}"
BEANCTL="$BEAND_BIN/beanctl"
[ -x "$BEANCTL" ] || { echo "skip: $BEANCTL not built"; exit 77; }
"$BEAND_PY" -c "import numpy" 2>/dev/null || { echo "skip: numpy not available in $BEAND_PY (run Deploy/install-deps.sh)"; exit 77; }
WORK=$(mktemp -d /tmp/beand-store-oracle.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export BEANCTL WORK BEAND_ROOT
exec "$BEAND_PY" - <<'PY'
import os, subprocess, sys
import numpy as np

beanctl, work = os.environ["BEANCTL"], os.environ["WORK"]
failures = []

def run(*args, ok=True):
    p = subprocess.run([beanctl, *args], capture_output=True, text=True)
    if ok and p.returncode != 0:
        sys.exit(f"beanctl {' '.join(args)} failed ({p.returncode}): {p.stderr.strip()}")
    return p

def reference(x, q, k, metric):
    x = x.astype(np.float64); q = q.astype(np.float64)
    if metric == "l2":
        d = ((q[:, None, :] - x[None, :, :]) ** 2).sum(-1) if len(x) * len(q) < 2_000_000 else \
            (q * q).sum(1)[:, None] + (x * x).sum(1)[None, :] - 2 * q @ x.T
    else:
        nx = np.linalg.norm(x, axis=1); nq = np.linalg.norm(q, axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            d = 1 - (q @ x.T) / (nq[:, None] * nx[None, :])
        d[:, nx == 0] = 1; d[nq == 0, :] = 1
    ids = np.array([np.lexsort((np.arange(len(x)), row))[:k] for row in d])
    return ids, np.take_along_axis(d, ids, 1)

def check(name, store, x, q, k, metric, threads=1):
    out = f"{work}/{name}"
    run("store", "search", "--store", store, "--queries", save(f"{name}-q", q), "-k", str(k),
        "--metric", metric, "--output", out, "--threads", str(threads))
    ids, dist = np.load(out + ".ids.npy"), np.load(out + ".dist.npy")
    assert ids.dtype == np.int64 and dist.dtype == np.float32 and ids.shape == (len(q), k), (ids.dtype, dist.dtype, ids.shape)
    rid, rdist = reference(x, q, k, metric)
    bad = int((ids != rid).any(axis=1).sum())
    err = float(np.abs(dist - rdist).max() / max(1.0, float(np.abs(rdist).max())))
    status = "ok" if bad == 0 and err < 1e-5 else "FAIL"
    print(f"  {name:28s} n={len(x):6d} d={x.shape[1]:3d} q={len(q):3d} k={k:2d} {metric:6s} threads={threads}: "
          f"{bad} queries differ, max rel. distance error {err:.1e}  {status}")
    if status != "ok": failures.append(name)

def save(name, a):
    path = f"{work}/{name}.npy"; np.save(path, a); return path

def labels(name, n, names=("Normal", "Black", "Sour")):
    path = f"{work}/{name}.txt"
    with open(path, "w") as f: f.write("".join(names[i % len(names)] + "\n" for i in range(n)))
    return path

rng = np.random.default_rng(2026)
print("random data against the float64 oracle")
for d, n, metric in [(128, 20000, "cosine"), (37, 5000, "l2")]:
    store = f"{work}/s{d}"
    x = rng.standard_normal((n, d)).astype(np.float32)
    x[10] = x[3]; x[11] = x[3]; x[12] = 0          # duplicates (tie rule) and a zero row
    run("store", "add", "--store", store, "--vectors", save(f"x{d}", x[: n // 2]), "--labels", labels(f"l{d}a", n // 2),
        "--metric", metric, "--fingerprint", "oracle-enc")
    run("store", "add", "--store", store, "--vectors", save(f"x{d}b", x[n // 2:]), "--labels", labels(f"l{d}b", n - n // 2))
    q = rng.standard_normal((100, d)).astype(np.float32); q[0] = x[3]
    for metric_q in ("cosine", "l2"):
        for k in (1, 10, 64):
            check(f"d{d}-{metric_q}-k{k}-batch100", store, x, q, k, metric_q)
        check(f"d{d}-{metric_q}-batch1", store, x, q[:1], 10, metric_q)
        check(f"d{d}-{metric_q}-batch3-2threads", store, x, q[:3], 10, metric_q, threads=2)
    # Clustered data: many near-ties, where float32 alone would misorder.
    centers = rng.standard_normal((20, d)).astype(np.float32)
    xc = (centers[rng.integers(0, 20, n)] + 1e-3 * rng.standard_normal((n, d))).astype(np.float32)
    cstore = f"{work}/c{d}"
    run("store", "add", "--store", cstore, "--vectors", save(f"xc{d}", xc), "--labels", labels(f"lc{d}", n),
        "--metric", metric, "--fingerprint", "oracle-enc")
    qc = (centers[rng.integers(0, 20, 64)] + 1e-3 * rng.standard_normal((64, d))).astype(np.float32)
    check(f"d{d}-clustered-{metric}", cstore, xc, qc, 10, metric)
    check(f"d{d}-clustered-{metric}-b1", cstore, xc, qc[:1], 10, metric)

emb = os.path.join(os.environ["BEAND_ROOT"], "Tests/data/embeddings.npy")
if os.path.exists(emb):
    e = np.load(emb).astype(np.float32)
    store = f"{work}/real"
    run("store", "add", "--store", store, "--vectors", save("real", e), "--labels", labels("lreal", len(e)), "--fingerprint", "real")
    # The queries are stored vectors themselves (each its own nearest) and their near neighbours:
    # real embeddings cluster tightly, which is where float32/bfloat16 ties and re-ranking matter.
    check("real-embeddings-cosine", store, e, e[:64], 10, "cosine")
    check("real-embeddings-cosine-b1", store, e, e[64:65], 10, "cosine")
    check("real-embeddings-l2", store, e, e[100:164], 10, "l2")
    check("real-embeddings-l2-k64", store, e, e[200:232], 64, "l2")
else:
    print("FAIL: Tests/data/embeddings.npy is missing: it is committed with the default encoder"); sys.exit(1)

print("export round trip")
store = f"{work}/s37"
run("store", "export", "--store", store, "--output", f"{work}/exp")
exported = np.load(f"{work}/exp.vectors.npy")
original = np.concatenate([np.load(f"{work}/x37.npy"), np.load(f"{work}/x37b.npy")])
csv = open(f"{work}/exp.labels.csv").read().splitlines()
if not (exported.dtype == np.float32 and np.array_equal(exported, original) and len(csv) == len(original) + 1
        and csv[0] == "id,label,source_id,added,author" and csv[1].split(",")[1] == "Normal"):
    failures.append("export"); print("  export FAIL")
else:
    print(f"  exported {len(exported)} vectors bit-identical, {len(csv) - 1} label rows  ok")

print("remove")
import json
before = json.loads(run("store", "info", "--store", store, "--json").stdout)
p = run("store", "remove", "--store", store, "--label", "Black")
info = run("store", "info", "--store", store, "--json").stdout
j = json.loads(info)
if before["labels"]["Black"] == 0 or j["labels"].get("Black", 0) != 0 or j["count"] != before["count"] - before["labels"]["Black"] \
        or j["generation"] != before["generation"] + 1:
    failures.append("remove"); print("  remove FAIL", info)
else:
    print(f"  {p.stdout.strip()}  ok")

print("bad input is refused with a message naming the file")
x = rng.standard_normal((10, 37)).astype(np.float32)
bad_cases = [
    ("label count", ["store", "add", "--store", store, "--vectors", save("b1", x), "--labels", labels("b1", 9)], "9 labels for 10 vectors"),
    ("dimension", ["store", "add", "--store", store, "--vectors", save("b2", x[:, :30]), "--labels", labels("b2", 10)], "30 columns but the store holds dimension 37"),
    ("fingerprint", ["store", "add", "--store", store, "--vectors", save("b3", x), "--labels", labels("b3", 10),
                     "--fingerprint", "other-enc"], "made for encoder \"oracle-enc\", --fingerprint says \"other-enc\""),
    ("not npy", ["store", "add", "--store", store, "--vectors", labels("b4", 10), "--labels", labels("b4", 10)], "not a .npy file"),
    ("NaN vector", ["store", "add", "--store", store, "--vectors", save("b5", np.where(np.arange(370).reshape(10, 37) == 40, np.nan, x).astype(np.float32)),
                    "--labels", labels("b5", 10)], "vector 1, column 3: NaN"),
    ("new store without fingerprint", ["store", "add", "--store", f"{work}/new", "--vectors", save("b6", x), "--labels", labels("b6", 10)], "give --fingerprint"),
    ("unknown label", ["store", "remove", "--store", store, "--label", "Nope"], "no label \"Nope\""),
    ("search columns", ["store", "search", "--store", store, "--queries", save("b7", x[:, :5]), "-k", "3", "--output", f"{work}/o"], "5 columns"),
    ("search k", ["store", "search", "--store", store, "--queries", save("b8", x), "-k", "65", "--output", f"{work}/o"], "k = 65"),
    ("missing store", ["store", "info", "--store", f"{work}/absent"], "no current generation"),
]
before = run("store", "info", "--store", store, "--json").stdout
for name, args, needle in bad_cases:
    p = run(*args, ok=False)
    msg = [line for line in (p.stderr + p.stdout).strip().splitlines() if line.strip() and "--help" not in line]
    good = p.returncode != 0 and any(needle in line for line in msg)
    print(f"  {name:30s} rc={p.returncode} {msg[0] if msg else ''!r:.120}  {'ok' if good else 'FAIL'}")
    if not good: failures.append("bad input: " + name)
if run("store", "info", "--store", store, "--json").stdout != before:
    failures.append("refused commands changed the store"); print("  store changed by refused commands  FAIL")

print(f"{'FAILED: ' + ', '.join(failures) if failures else 'all checks passed'}")
sys.exit(1 if failures else 0)
PY
