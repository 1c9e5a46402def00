#!/usr/bin/env bash
# Vector store vs faiss-cpu IndexFlatIP, same vectors, same run: d=128, k=10, N = 1k, 30k, 1M,
# batch 1 and 64, 1 and 2 threads; faiss both as shipped and tuned
# (distance_compute_blas_threshold = 20), ratio against the faster of the two. Then the hot swap
# at N=30k: publish-to-first-answer time and query latency during swaps.
#
# Fairness: both sides get unit-norm vectors (our cosine = faiss inner product on them), the same
# queries, the same thread count (ours: --threads T with OpenBLAS single-threaded, since the store
# splits rows itself; faiss: omp_set_num_threads(T) and OMP/OPENBLAS_NUM_THREADS=T for its bundled
# OpenBLAS, OMP_WAIT_POLICY=PASSIVE). OPENBLAS_CORETYPE / OPENBLAS_L2_SIZE are left as the environment sets them, for both
# (printed below). Wall-clock q/s swings with other load on a shared machine, so queries per
# CPU-second of the process are printed too. Env: BENCH_SECONDS (per figure, default 3), BENCH_SIZES (default "1000 30000 1000000").
set -euo pipefail
: "${BEAND_ROOT:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${BEAND_BIN:=$BEAND_ROOT/.build/release}"
: "${BEAND_PY:=$BEAND_ROOT/.venv/bin/python}"
BEANCTL="$BEAND_BIN/beanctl"
[ -x "$BEANCTL" ] || { echo "bench-store: $BEANCTL not built (swift build -c release --product beanctl)"; exit 1; }
"$BEAND_PY" -c "import numpy, faiss" 2>/dev/null || { echo "bench-store: numpy/faiss missing in $BEAND_PY (run Deploy/install-deps.sh)"; exit 1; }
WORK=$(mktemp -d /tmp/beand-bench-store.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
export BEANCTL WORK BEAND_PY
exec "$BEAND_PY" - <<'PY'
import json, os, subprocess, sys, time
import numpy as np

beanctl, work, py = os.environ["BEANCTL"], os.environ["WORK"], os.environ["BEAND_PY"]
SECONDS = float(os.environ.get("BENCH_SECONDS", "3"))
SIZES = [int(s) for s in os.environ.get("BENCH_SIZES", "1000 30000 1000000").split()]
D, K, BATCHES, THREADS = 128, 10, (1, 64), (1, 2)
print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')} "
      f"OPENBLAS_L2_SIZE={os.environ.get('OPENBLAS_L2_SIZE', '(unset)')}; {SECONDS:g} s per figure, median of 3 rounds")

FAISS_WORKER = r'''
import json, sys, time
import numpy as np, faiss
x = np.load(sys.argv[1]); q = np.load(sys.argv[2]); threads = int(sys.argv[3]); seconds = float(sys.argv[4]); k = int(sys.argv[5])
faiss.omp_set_num_threads(threads)
index = faiss.IndexFlatIP(x.shape[1]); index.add(x)
shipped = faiss.cvar.distance_compute_blas_threshold
out = {"faiss": faiss.__version__, "shipped_threshold": shipped}
for variant, threshold in (("shipped", shipped), ("tuned", 20)):
    faiss.cvar.distance_compute_blas_threshold = threshold
    for batch in (1, 64):
        i = 0
        def step():
            global i
            s = (i * batch) % (len(q) - batch + 1); i += 1
            index.search(q[s:s + batch], k)
        end = time.perf_counter() + min(0.5, seconds / 4)
        while time.perf_counter() < end: step()
        rounds, cpu_rounds = [], []
        for _ in range(3):
            n, t, c = 0, time.perf_counter(), time.process_time()
            while time.perf_counter() - t < seconds / 3: step(); n += batch
            rounds.append(n / (time.perf_counter() - t)); cpu_rounds.append(n / max(1e-9, time.process_time() - c))
        out[f"{variant}/{batch}"] = sorted(rounds)[1]
        out[f"{variant}/{batch}/cpu"] = sorted(cpu_rounds)[1]
print(json.dumps(out))
'''

def ours(store, batch, threads, queries, extra=()):
    p = subprocess.run([beanctl, "bench", "store", "--store", store, "--batch", str(batch), "--threads", str(threads),
                        "-k", str(K), "--queries", queries, "--seconds", str(SECONDS), "--rounds", "3", "--json", *extra],
                       capture_output=True, text=True, check=True)
    return json.loads(p.stdout)

def faiss_run(xpath, qpath, threads):
    # PASSIVE: on a shared 2-core box, OpenMP's default spin-waiting makes 2-thread faiss collapse;
    # passive waiting is faiss's better configuration here.
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), OPENBLAS_NUM_THREADS=str(threads), OMP_WAIT_POLICY="PASSIVE")
    p = subprocess.run([py, "-c", FAISS_WORKER, xpath, qpath, str(threads), str(SECONDS), str(K)],
                       capture_output=True, text=True, check=True, env=env)
    return json.loads(p.stdout)

rng = np.random.default_rng(4)
q = rng.standard_normal((2048, D), dtype=np.float32); q /= np.linalg.norm(q, axis=1, keepdims=True)
qpath = f"{work}/q.npy"; np.save(qpath, q)
rows = []
print("ours: bfloat16 scan + exact float64 re-ranking where the CPU has AVX512_BF16 (scan column), else float32;")
print("'f32 scan' = ours with --float32-scan (per CPU-second), for comparison")
print(f"{'N':>8} {'thr':>3} {'batch':>5} {'ours q/s':>10} {'faiss shipped':>13} {'faiss tuned':>11} {'ratio vs best':>13}"
      f" | per CPU-second: {'ours':>7} {'faiss best':>10} {'ratio':>6} | {'f32 scan':>8} {'ratio':>6} {'scan':>8} rescans")
for n in SIZES:
    x = rng.standard_normal((n, D), dtype=np.float32); x /= np.linalg.norm(x, axis=1, keepdims=True)
    xpath = f"{work}/x{n}.npy"; np.save(xpath, x); del x
    with open(f"{work}/labels.txt", "w") as f: f.write("Normal\n" * n)
    store = f"{work}/store{n}"
    t = time.perf_counter()
    subprocess.run([beanctl, "store", "add", "--store", store, "--vectors", xpath, "--labels", f"{work}/labels.txt",
                    "--metric", "cosine", "--fingerprint", "bench"], check=True, capture_output=True)
    build_s = time.perf_counter() - t
    for threads in THREADS:
        fx = faiss_run(xpath, qpath, threads)
        for batch in BATCHES:
            o = ours(store, batch, threads, qpath)
            o32 = ours(store, batch, threads, qpath, ("--float32-scan",))
            best = max(fx[f"shipped/{batch}"], fx[f"tuned/{batch}"])
            best_cpu = max(fx[f"shipped/{batch}/cpu"], fx[f"tuned/{batch}/cpu"])
            row = dict(n=n, threads=threads, batch=batch, ours=o["queries_per_s"], faiss_shipped=fx[f"shipped/{batch}"],
                       faiss_tuned=fx[f"tuned/{batch}"], ratio=o["queries_per_s"] / best, rescans=o["exact_rescans"],
                       ours_cpu=o["queries_per_cpu_s"], faiss_best_cpu=best_cpu, ratio_cpu=o["queries_per_cpu_s"] / best_cpu,
                       faiss=fx["faiss"], scan=o.get("scan", "float32"), ours_f32_cpu=o32["queries_per_cpu_s"],
                       ratio_f32_cpu=o32["queries_per_cpu_s"] / best_cpu)
            rows.append(row)
            print(f"{n:>8} {threads:>3} {batch:>5} {row['ours']:>10.0f} {row['faiss_shipped']:>13.0f} "
                  f"{row['faiss_tuned']:>11.0f} {row['ratio']:>12.2f}x | {'':16}{row['ours_cpu']:>7.0f} {best_cpu:>10.0f} "
                  f"{row['ratio_cpu']:>5.2f}x | {row['ours_f32_cpu']:>8.0f} {row['ratio_f32_cpu']:>5.2f}x "
                  f"{row['scan']:>8} {row['rescans']}", flush=True)
    if n == 30000:
        swap = json.loads(subprocess.run([beanctl, "bench", "store", "--store", store, "--swap", "--swaps", "20", "--json"],
                                         capture_output=True, text=True, check=True).stdout)
    os.remove(xpath)
    subprocess.run(["rm", "-rf", store])
    print(f"         (store of {n} vectors published in {build_s:.1f} s, faiss {fx['faiss']}, "
          f"shipped blas threshold {fx['shipped_threshold']})", flush=True)

if "swap" in dir():
    print(f"hot swap, N=30000, {swap['swaps']} swaps, one query thread (batch 1) through a watching LiveStore:")
    print(f"  publish (write + fsync + rename + pointer)  median {swap['publish_ms_median']:.1f} ms")
    print(f"  publish done -> first answer from new gen   median {swap['visible_after_publish_ms_median']:.1f} ms, "
          f"max {swap['visible_after_publish_ms_max']:.1f} ms (from publish start: median "
          f"{swap['visible_after_publish_start_ms_median']:.1f} ms)")
    print(f"  query wait for the generation hand-over during swaps  p99 {swap['handover_wait_ms_during_swap_p99'] * 1e3:.1f} us, "
          f"max {swap['handover_wait_ms_during_swap_max'] * 1e3:.1f} us (outside swaps max "
          f"{swap['handover_wait_ms_outside_swap_max'] * 1e3:.1f} us)")
    print(f"  query latency during swaps   p99 {swap['query_ms_during_swap_p99']:.2f} ms, max {swap['query_ms_during_swap_max']:.2f} ms "
          f"({swap['queries_during_swap']} queries)")
    print(f"  query latency outside swaps  p99 {swap['query_ms_outside_swap_p99']:.2f} ms, max {swap['query_ms_outside_swap_max']:.2f} ms "
          f"({swap['queries_outside_swap']} queries)")
with open(os.environ.get("BENCH_STORE_JSON", f"{work}/results.json"), "w") as f:
    json.dump({"rows": rows, "swap": swap if "swap" in dir() else None}, f)
PY
