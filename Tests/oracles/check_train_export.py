"""onnxruntime check of networks exported by BeanNet's training code.

For each NAME.onnx in DIR (written by the Swift test suite "Training: ONNX export"), runs
onnxruntime on NAME.input.f32 and compares with NAME.expected.f32, the training code's own
inference forward (which the Swift test already matched against the project's runtime).
Also runs the ONNX checker and confirms the batch dimension is dynamic (batch 1 works too).
"""
import glob
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort

TOLERANCE = 1e-4


def main(directory):
    models = sorted(glob.glob(os.path.join(directory, "*.onnx")))
    if len(models) < 3:
        print(f"FAIL: expected at least 3 exported models in {directory}, found {len(models)}")
        return 1
    failures = 0
    for path in models:
        name = os.path.basename(path)[:-5]
        onnx.checker.check_model(onnx.load(path))
        shapes = json.load(open(os.path.join(directory, name + ".shapes.json")))
        x = np.fromfile(os.path.join(directory, name + ".input.f32"), dtype=np.float32).reshape(shapes["input"])
        expected = np.fromfile(os.path.join(directory, name + ".expected.f32"), dtype=np.float32).reshape(shapes["output"])
        session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        (got,) = session.run(None, {session.get_inputs()[0].name: x})
        err = float(np.max(np.abs(got - expected)))
        (single,) = session.run(None, {session.get_inputs()[0].name: x[:1]})
        err1 = float(np.max(np.abs(single - expected[:1])))
        ok = got.shape == expected.shape and err <= TOLERANCE and err1 <= TOLERANCE
        print(f"{'ok  ' if ok else 'FAIL'} {name}: output {list(got.shape)}, max abs error {err:.2e} (batch {x.shape[0]}), {err1:.2e} (batch 1)")
        failures += 0 if ok else 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
