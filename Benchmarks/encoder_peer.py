"""Benchmark peer and model maker for bench-encoder.sh.

  encoder_peer.py make OUT.onnx          ResNet-18 (128-d head), TorchScript-exporter pattern,
                                         dynamic batch/height/width, seeded random weights.
  encoder_peer.py ort FILE S B THREADS   onnxruntime images/s and images per CPU-second (median of 3
                                         rounds of ~1 s), JSON.
"""
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np


def make(out):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "Tests" / "oracles"))
    import onnx
    import onnx_models

    onnx.save(onnx_models.resnet18(1, "torchscript", dynamic_spatial=True), out)


def ort_bench(path, size, batch, threads, seconds=1.0, rounds=3):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    x = np.random.default_rng(42).uniform(-1, 1, (batch, 3, size, size)).astype(np.float32)
    for _ in range(2):
        sess.run(None, {name: x})
    rates, cpu_rates = [], []
    for _ in range(rounds):
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            sess.run(None, {name: x})
            n += batch
        rates.append(n / (time.perf_counter() - t0))
        # CPU time of the whole process (every onnxruntime thread), as beanctl bench encoder reports it.
        cpu_rates.append(n / max(time.process_time() - c0, 1e-9))
    return {"images_per_s": statistics.median(rates), "rounds": rates, "onnxruntime": ort.__version__,
            "images_per_cpu_s": statistics.median(cpu_rates)}


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2])
    else:
        print(json.dumps(ort_bench(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]))))
