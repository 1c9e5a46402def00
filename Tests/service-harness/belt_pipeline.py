"""The belt-simulator pipeline fixture shared by the pipeline tests (90-pipeline, 91-spool): a
synthetic scene with known beans (pale green = good, near-black = defect), a small deterministic
ONNX encoder (mean colour), a store of embedded synthetic crops, and the daemon's config for it.

Needs numpy, onnx and onnxruntime (the test venv); the tests check for them and skip without.
"""
import json
import os
import socket
import struct
import subprocess
import threading
import time
import zlib

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from harness import *

BEANCTL = os.path.join(os.environ.get("BEAND_BIN", ".build/debug"), "beanctl")
BELT = (200, 190, 170)
GOOD = (120, 170, 90)
DEFECT = (30, 28, 26)
CROP = 32

def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xffffffff)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))

def ellipse(img, cx, cy, ax, ay, colour):
    h, w, _ = img.shape
    yy, xx = np.mgrid[0:h, 0:w]
    img[((xx - cx) / ax) ** 2 + ((yy - cy) / ay) ** 2 <= 1.0] = colour

def scene(path, rows, margin=220):
    """Two columns of beans, staggered; every third bean a defect. Returns (beans, defects)."""
    height = margin * 2 + rows * 70
    img = np.zeros((height, 320, 3), np.uint8)
    img[:, :] = BELT
    beans = defects = 0
    for r in range(rows):
        for c, x in enumerate((100, 220)):
            y = margin + r * 70 + c * 35
            bad = (beans % 3) == 2
            ellipse(img, x, y, 13, 19, DEFECT if bad else GOOD)
            beans += 1
            defects += bad
    write_png(path, img)
    return beans, defects

def encoder(path):
    """Mean colour × 10 plus a constant: GlobalAveragePool → Flatten → Gemm, deterministic."""
    w = np.array([[10, 0, 0], [0, 10, 0], [0, 0, 10], [0, 0, 0]], np.float32)
    b = np.array([0, 0, 0, 1], np.float32)
    nodes = [helper.make_node("GlobalAveragePool", ["x"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"], axis=1),
             helper.make_node("Gemm", ["f", "w", "b"], ["emb"], transB=1)]
    graph = helper.make_graph(nodes, "colour", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, CROP, CROP])],
                              [helper.make_tensor_value_info("emb", TensorProto.FLOAT, ["N", 4])],
                              [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="90-pipeline")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)

def crops(colour, n):
    out = np.zeros((n, CROP, CROP, 3), np.uint8)
    for i in range(n):
        frac = 0.55 + 0.3 * i / max(1, n - 1)
        ellipse(out[i], CROP / 2 - 0.5, CROP / 2 - 0.5, CROP / 2 * frac * 0.7, CROP / 2 * frac, colour)
    return out

def embed(model_path, rgb):
    x = (rgb.astype(np.float32) / 255.0).transpose(0, 3, 1, 2).copy()  # mean 0, std 1 in the config
    return ort.InferenceSession(model_path, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]

def save_npy(path, a):
    np.save(path, np.ascontiguousarray(a, np.float32))

def beanctl(*args):
    r = subprocess.run([BEANCTL, *args], capture_output=True, text=True, timeout=60)
    check(r.returncode == 0, "beanctl %s: %s" % (" ".join(args), r.stderr.strip()))
    return r.stdout

def labelled_store(d, model):
    """A store of 12 good and 12 defect (`Black`) synthetic crops embedded by `model` (onnxruntime),
    published with `beanctl store add` under d/store. Returns (store path, `model info` JSON)."""
    info = json.loads(beanctl("model", "info", "--json", model))
    store = os.path.join(d, "store")
    os.makedirs(store)
    save_npy(os.path.join(d, "v1.npy"), np.concatenate([embed(model, crops(GOOD, 12)), embed(model, crops(DEFECT, 12))]))
    with open(os.path.join(d, "v1.labels"), "w") as f:
        f.write("Normal\n" * 12 + "Black\n" * 12)
    beanctl("store", "add", "--store", store, "--vectors", os.path.join(d, "v1.npy"), "--labels",
            os.path.join(d, "v1.labels"), "--metric", "l2", "--fingerprint", info["fingerprint"])
    return store, info

def config(d, model, store, photo, camera_extra="", inspect_extra="", drain_ms=3000, ring=4096, spool_extra="", k=3):
    return write_config(d, log_target="journald", drain_timeout_ms=drain_ms, extra=f"""ring = {ring}
[store]
path = "{store}"
[encoder]
model = "{model}"
workers = 1
max_batch = 8
mean = [0, 0, 0]
std = [1, 1, 1]
[inspect]
k = {k}
{inspect_extra}
{spool_extra}
[[camera]]
name = "cam0"
source = "belt:{photo}"
width = 320
height = 240
min_area = 300
{camera_extra}
""")

def wait_ready(daemon):
    """Ping answers once the control socket is bound; the reject stream follows a moment later."""
    daemon.wait_ready(timeout=30)
    deadline = time.monotonic() + 10
    while not os.path.exists(os.path.join(daemon.directory, "rejects.sock")):
        if time.monotonic() > deadline:
            fail("reject stream socket did not appear: %s" % daemon.log()[-2000:])
        time.sleep(0.02)

def status(daemon):
    r = request(daemon.control, {"command": "status"})
    if not r["ok"]:
        fail("status failed: %s" % r)
    return r["result"]

class Consumer(threading.Thread):
    """Reads the reject stream from `resume_after` until closed or told to stop after `limit` events."""
    def __init__(self, path, resume_after=0, limit=None):
        super().__init__(daemon=True)
        self.path, self.resume_after, self.limit = path, resume_after, limit
        self.events, self.gaps = [], []
    def run(self):
        s = connect(self.path, timeout=60)
        s.sendall(json.dumps({"resume_after": self.resume_after}).encode() + b"\n")
        buf = b""
        try:
            while self.limit is None or len(self.events) < self.limit:
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    event = json.loads(line)
                    (self.gaps if event.get("type") == "gap" else self.events).append(event)
                    if self.limit is not None and len(self.events) >= self.limit:
                        break
        except OSError:
            pass
        s.close()

