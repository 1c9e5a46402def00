#!/usr/bin/env bash
# Crash safety: `beanctl store add` is SIGKILLed at random points 200 times. After every kill a
# reader must open a valid current generation (full validation: checksum, sections, rows) and every
# vector whose add was acknowledged ("published generation N", exit 0) must be present, bit-exact.
set -euo pipefail
: "${BEAND_ROOT:=$(cd "$(dirname "$0")/../.." && pwd)}"
: "${BEAND_BIN:=$BEAND_ROOT/.build/debug}"
: "${BEAND_PY:=$BEAND_ROOT/.venv/bin/python}"
BEANCTL="$BEAND_BIN/beanctl"
[ -x "$BEANCTL" ] || { echo "skip: $BEANCTL not built"; exit 77; }
"$BEAND_PY" -c "import numpy" 2>/dev/null || { echo "skip: numpy not available in $BEAND_PY (run Deploy/install-deps.sh)"; exit 77; }
WORK=$(mktemp -d /tmp/beand-store-crash.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export BEANCTL WORK
exec "$BEAND_PY" - <<'PY'
import os, random, signal, subprocess, sys, time
import numpy as np

beanctl, work = os.environ["BEANCTL"], os.environ["WORK"]
store = f"{work}/store"
rng = np.random.default_rng(41)
random.seed(41)
DIM, BATCH, KILLS = 32, 20, 200

def add_cmd(i, vectors):
    path = f"{work}/add{i % 2}.npy"
    np.save(path, vectors)
    return [beanctl, "store", "add", "--store", store, "--vectors", path, "--labels", labels,
            "--source-start", str(1_000_000 + i * BATCH), "--fingerprint", "crash-enc", "--keep", "2"]

labels = f"{work}/labels.txt"
open(labels, "w").write("Normal\n" * BATCH)
acknowledged = {}  # source id -> vector

def check(after):
    p = subprocess.run([beanctl, "store", "export", "--store", store, "--output", f"{work}/exp"], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"after {after}: the current generation does not open: {p.stderr.strip()}")
    vectors = np.load(f"{work}/exp.vectors.npy")
    sources = [int(line.split(",")[2]) for line in open(f"{work}/exp.labels.csv").read().splitlines()[1:]]
    row_of = {s: r for r, s in enumerate(sources)}
    missing = [s for s in acknowledged if s not in row_of]
    if missing:
        sys.exit(f"after {after}: {len(missing)} acknowledged vectors missing (e.g. source {missing[0]})")
    for s, v in acknowledged.items():
        if not np.array_equal(vectors[row_of[s]], v):
            sys.exit(f"after {after}: vector of source {s} differs")
    if len(set(sources)) != len(sources):
        sys.exit(f"after {after}: duplicate source ids")

# A base large enough that an add takes a while (the kill lands inside writing, fsync, rename).
base = rng.standard_normal((20000, DIM)).astype(np.float32)
open(f"{work}/base.txt", "w").write("Normal\n" * len(base))
np.save(f"{work}/base.npy", base)
subprocess.run([beanctl, "store", "add", "--store", store, "--vectors", f"{work}/base.npy", "--labels", f"{work}/base.txt",
                "--source-start", "0", "--fingerprint", "crash-enc"], check=True, capture_output=True)
for s in range(0, len(base), 997): acknowledged[s] = base[s]

# Time an undisturbed add to spread the kill points over its whole duration.
durations = []
for i in range(3):
    v = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    t = time.monotonic(); subprocess.run(add_cmd(10_000 + i, v), check=True, capture_output=True)
    durations.append(time.monotonic() - t)
    for j in range(BATCH): acknowledged[1_000_000 + (10_000 + i) * BATCH + j] = v[j]
span = sorted(durations)[1] * 1.1
print(f"undisturbed add: {sorted(durations)[1] * 1e3:.0f} ms; killing at uniform random points in 0–{span * 1e3:.0f} ms", flush=True)

outcomes = {"acknowledged": 0, "killed": 0}
for i in range(KILLS):
    v = rng.standard_normal((BATCH, DIM)).astype(np.float32)
    proc = subprocess.Popen(add_cmd(i, v), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(random.uniform(0, span))
    proc.send_signal(signal.SIGKILL)
    out, err = proc.communicate()
    if proc.returncode == 0 and "published generation" in out:
        outcomes["acknowledged"] += 1
        for j in range(BATCH): acknowledged[1_000_000 + i * BATCH + j] = v[j]
    elif proc.returncode == -signal.SIGKILL:
        outcomes["killed"] += 1
    else:
        sys.exit(f"add {i} failed on its own (rc={proc.returncode}): {err.strip()}")
    check(f"kill {i}")
    if (i + 1) % 25 == 0:
        # An add's duration follows the machine's load: keep the kill window covering both outcomes
        # (most kills mid-add, some after the acknowledgement) by stretching or shrinking it.
        finished = outcomes["acknowledged"] / (i + 1)
        if finished < 0.1:
            span *= 1.5
        elif finished > 0.5:
            span /= 1.5
    if (i + 1) % 50 == 0:
        print(f"  {i + 1} kills: {outcomes['killed']} mid-add, {outcomes['acknowledged']} finished first"
              f" (window now 0–{span * 1e3:.0f} ms)", flush=True)

# A clean add afterwards removes every leftover temporary file.
v = rng.standard_normal((BATCH, DIM)).astype(np.float32)
subprocess.run(add_cmd(99_999, v), check=True, capture_output=True)
leftovers = [n for n in os.listdir(store) if n.endswith(".tmp")]
if leftovers: sys.exit(f"temporary files left after a clean add: {leftovers}")
generations = [n for n in os.listdir(store) if n.startswith("gen-")]
print(f"{KILLS} SIGKILLs: {outcomes['killed']} killed mid-add, {outcomes['acknowledged']} finished first; "
      f"{len(acknowledged)} acknowledged vectors checked after every kill; {len(generations)} generation files kept")
if outcomes["killed"] < 50 or outcomes["acknowledged"] < 5:
    sys.exit("kill points did not cover both outcomes; timing is off")
print("ok")
PY
