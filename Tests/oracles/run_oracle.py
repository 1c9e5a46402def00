"""Compares `beanctl model run` with onnxruntime on the oracle models (max abs error ≤ 1e-4).

Usage: run_oracle.py BEANCTL WORKDIR [--only SUBSTRING[,SUBSTRING…]]
Exit 0 when every case matches; prints one line per case.
"""
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

sys.path.insert(0, str(Path(__file__).parent))
import onnx_models as M  # noqa: E402

TOL = 1e-4
TORCH_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "torch"


def run_case(beanctl, work, name, model, x):
    path = work / f"{name}.onnx"
    onnx.save(model, path)
    np.save(work / f"{name}.in.npy", x)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = sess.run(None, {sess.get_inputs()[0].name: x})[0]
    r = subprocess.run([beanctl, "model", "run", str(path), "--input", str(work / f"{name}.in.npy"),
                        "--output", str(work / f"{name}.out.npy")], capture_output=True, text=True)
    if r.returncode != 0:
        return False, f"beanctl failed: {r.stderr.strip()}"
    got = np.load(work / f"{name}.out.npy")
    if got.shape != want.shape:
        return False, f"shape {got.shape} != onnxruntime {want.shape}"
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    ok = err <= TOL and np.all(np.isfinite(got))
    return ok, f"max abs err {err:.2e} (|out| max {float(np.max(np.abs(want))):.3g})"


def expect_error(beanctl, work, name, model, must_contain):
    path = work / f"{name}.onnx"
    if isinstance(model, bytes):
        path.write_bytes(model)
    else:
        onnx.save(model, path)
    r = subprocess.run([beanctl, "model", "info", str(path)], capture_output=True, text=True)
    missing = [s for s in must_contain if s not in r.stderr]
    if r.returncode != 1 or missing:
        return False, f"rc={r.returncode} stderr={r.stderr.strip()!r} (wanted {missing})"
    return True, r.stderr.strip().splitlines()[-1]


def main():
    beanctl, work = sys.argv[1], Path(sys.argv[2])
    only = sys.argv[4] if len(sys.argv) > 4 and sys.argv[3] == "--only" else ""
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1234)
    cases = []
    # The three networks: 20 random inputs each, one batch.
    cases.append(("resnet18_torchscript_op17", M.resnet18(1, "torchscript"), rng.standard_normal((20, 3, 64, 64)).astype(np.float32)))
    cases.append(("resnet18_dynamo_op18", M.resnet18(4, "dynamo"), rng.standard_normal((20, 3, 64, 64)).astype(np.float32)))
    cases.append(("mobilenet_block", M.mobilenet_block(2), rng.standard_normal((20, 3, 48, 48)).astype(np.float32)))
    cases.append(("conv_autoencoder", M.autoencoder(3), rng.standard_normal((20, 3, 32, 32)).astype(np.float32)))
    # One image per run: the late layers have 1–16 GEMM rows and take the packed small-row kernel.
    cases.append(("resnet18_torchscript_op17_batch1", M.resnet18(1, "torchscript"), rng.standard_normal((1, 3, 64, 64)).astype(np.float32)))
    cases.append(("resnet18_dynamo_op18_batch1", M.resnet18(4, "dynamo"), rng.standard_normal((1, 3, 64, 64)).astype(np.float32)))
    # Files written by PyTorch's own exporters (Tests/fixtures/torch/export_torch.py; committed, so no torch here).
    for stem in ["smallresnet_torchscript_op17", "smallresnet_dynamo_op18"]:
        model = onnx.load(str(TORCH_FIXTURES / f"{stem}.onnx"))
        cases.append((f"torch_{stem}", model, rng.standard_normal((20, 3, 64, 64)).astype(np.float32)))
        cases.append((f"torch_{stem}_batch1", model, rng.standard_normal((1, 3, 64, 64)).astype(np.float32)))
    for name, model, shape in M.op_cases():
        cases.append((name, model, rng.standard_normal(shape).astype(np.float32)))

    failures = 0
    count = 0
    for name, model, x in cases:
        if only and not any(o in name for o in only.split(",")):
            continue
        t = time.time()
        ok, msg = run_case(beanctl, work, name, model, x)
        count += 1
        failures += not ok
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {msg} [{time.time() - t:.1f}s]", flush=True)

    # Refusals: the exact reason, naming node, operator and attribute.
    b = M.Builder(9)
    y = b.node("Softmax", [b.conv("input", 3, 4, 3, 1, 1)])
    bad_op = b.model("input", ["batch", 3, 8, 8], y)
    b = M.Builder(9)
    y = b.node("Resize", [b.conv("input", 3, 4, 3, 1, 1), "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="linear")
    bad_attr = b.model("input", ["batch", 3, 8, 8], y)
    good = onnx._serialize(M.resnet18(1, "torchscript")) if hasattr(onnx, "_serialize") else M.resnet18(1, "torchscript").SerializeToString()
    refusals = [
        ("refuse_unsupported_op", bad_op, ["Softmax", "n_Softmax", "not supported"]),
        ("refuse_unsupported_attr", bad_attr, ["Resize", "attribute 'mode'", "linear"]),
        ("refuse_truncated", good[: len(good) // 3], ["not a valid ONNX model"]),
        ("refuse_garbage", b"\x08\x07garbage" * 50, ["cannot load"]),
    ]
    if not only:
        for name, model, needles in refusals:
            ok, msg = expect_error(beanctl, work, name, model, needles)
            count += 1
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {name}: {msg}", flush=True)
    print(f"{count - failures}/{count} oracle cases passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
