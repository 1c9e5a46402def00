#!/usr/bin/env python3
"""Makes the demo's committed assets (run once by a developer; `make run` only uses the results):

  Config/demo/belt.png     a synthetic belt scene: pale green-beige beans (good) and near-black beans
                           (defect "Black") on a light grey belt, for the belt simulator;
  Config/demo/encoder.onnx the STAND-IN encoder: a 3-layer CNN with fixed random weights (seed 7),
                           64x64 RGB -> 32-d L2-normalised vector. It is not trained; it separates
                           colours, which is all the demo scene needs. The trained encoder comes
                           with the learning issue (issue 7).
  Config/demo/store/       a vector store of 120 labelled synthetic crops (60 Normal, 60 Black),
                           embedded by beand's own runtime (`beanctl model run`) and published with
                           `beanctl store add`.
  Config/demo/teach/       photos of single synthetic beans, one folder per label (Black, Normal),
                           drawn as in belt.png: what `make run` enrolls after a few seconds to
                           show the daemon learning the demo's near-black beans without a restart.

Usage: .venv/bin/python Deploy/demo/make_demo_assets.py [--teach-only]  (needs a beanctl built;
--teach-only writes Config/demo/teach/ alone and needs neither beanctl nor onnx)
"""
import os, struct, subprocess, sys, tempfile, zlib
import numpy as np
import onnx
from onnx import helper, TensorProto, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "Config", "demo")
BEANCTL = os.environ.get("BEANCTL", os.path.join(ROOT, ".build", "debug", "beanctl"))
BELT = np.array([200, 200, 196], np.float32)
GOOD = np.array([150, 162, 108], np.float32)
BLACK = np.array([48, 42, 36], np.float32)

def write_png(path, rgb):
    h, w, _ = rgb.shape
    raw = b"".join(b"\x00" + rgb[y].tobytes() for y in range(h))
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))

def draw_bean(img, cx, cy, a, b, angle, colour, rng):
    h, w, _ = img.shape
    r = int(max(a, b)) + 2
    y0, y1, x0, x1 = max(cy - r, 0), min(cy + r + 1, h), max(cx - r, 0), min(cx + r + 1, w)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    c, s = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s) / a
    v = (-(xx - cx) * s + (yy - cy) * c) / b
    inside = u * u + v * v <= 1.0
    shade = 1.0 - 0.18 * (u * u + v * v)            # a little relief, darker at the rim
    crease = np.abs(v) < 0.08                       # the bean's centre cut
    pix = colour[None, None, :] * shade[..., None] + rng.normal(0, 4, (y1 - y0, x1 - x0, 3))
    pix[crease] *= 0.8
    region = img[y0:y1, x0:x1]
    region[inside] = pix[inside]

def make_scene(rng):
    w, h = 1280, 3000
    # A gentle light fall-off across the belt instead of per-pixel noise: realistic enough for the
    # segmenter and it keeps the PNG small.
    img = np.tile(BELT, (h, w, 1)) * (1.0 - 0.04 * np.abs(np.linspace(-1, 1, w)))[None, :, None]
    placed, labels = [], []
    tries = 0
    while len(placed) < 150 and tries < 20000:
        tries += 1
        a, b = rng.uniform(30, 38), rng.uniform(20, 25)   # 1,900-3,000 px: tray-sized beans
        cx, cy = int(rng.uniform(40, w - 40)), int(rng.uniform(40, h - 40))
        if any((cx - px) ** 2 + (cy - py) ** 2 < (a + pa + 14) ** 2 for px, py, pa in placed):
            continue
        black = rng.random() < 0.2
        draw_bean(img, cx, cy, a, b, rng.uniform(0, np.pi), BLACK if black else GOOD, rng)
        placed.append((cx, cy, a)); labels.append("Black" if black else "Normal")
    return np.clip(img, 0, 255).astype(np.uint8), labels

def make_crops(rng, colour, n):
    # What BeanVision's oriented crop produces: the bean's long axis horizontal, its length x 1.15
    # filling the 64-pixel crop, the background masked to black.
    crops = np.zeros((n, 64, 64, 3), np.float32)
    for i in range(n):
        img = np.zeros((64, 64, 3), np.float32)
        a = 64 / 1.15 / 2
        draw_bean(img, 32, 32, a, a * rng.uniform(0.55, 0.75), rng.normal(0, 0.05), colour * rng.uniform(0.9, 1.1), rng)
        crops[i] = np.clip(img, 0, 255)
    return crops

def make_encoder(path):
    rng = np.random.default_rng(7)
    inits, nodes = [], []
    def conv(name, cin, cout, x):
        w = rng.normal(0, np.sqrt(2.0 / (cin * 9)), (cout, cin, 3, 3)).astype(np.float32)
        bias = np.zeros(cout, np.float32)
        inits.extend([numpy_helper.from_array(w, name + ".w"), numpy_helper.from_array(bias, name + ".b")])
        nodes.append(helper.make_node("Conv", [x, name + ".w", name + ".b"], [name + ".c"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
        nodes.append(helper.make_node("Relu", [name + ".c"], [name + ".r"]))
        return name + ".r"
    x = conv("conv1", 3, 16, "input")
    x = conv("conv2", 16, 32, x)
    x = conv("conv3", 32, 64, x)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["gap"]))
    nodes.append(helper.make_node("Flatten", ["gap"], ["flat"], axis=1))
    fc = rng.normal(0, np.sqrt(1.0 / 64), (32, 64)).astype(np.float32)
    inits.append(numpy_helper.from_array(fc, "fc.w")); inits.append(numpy_helper.from_array(np.zeros(32, np.float32), "fc.b"))
    nodes.append(helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["proj"], transB=1))
    nodes.append(helper.make_node("LpNormalization", ["proj"], ["embedding"], axis=1, p=2))
    graph = helper.make_graph(nodes, "beand-demo-standin-encoder",
                              [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, 64, 64])],
                              [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 32])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="beand make_demo_assets.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)

def make_teach_photos(rng, per_label=6):
    """Photos of one bean each on the belt, as the camera sees them: Black and Normal folders."""
    for label, colour in (("Black", BLACK), ("Normal", GOOD)):
        folder = os.path.join(OUT, "teach", label)
        os.makedirs(folder, exist_ok=True)
        for i in range(per_label):
            img = np.tile(BELT, (160, 160, 1))
            draw_bean(img, 80, 80, rng.uniform(30, 38), rng.uniform(20, 25), rng.uniform(0, np.pi), colour, rng)
            write_png(os.path.join(folder, "%s-%02d.png" % (label.lower(), i + 1)), np.clip(img, 0, 255).astype(np.uint8))

def main():
    os.makedirs(OUT, exist_ok=True)
    make_teach_photos(np.random.default_rng(2027))
    if "--teach-only" in sys.argv[1:]:
        return
    rng = np.random.default_rng(2026)
    scene, labels = make_scene(rng)
    write_png(os.path.join(OUT, "belt.png"), scene)
    print(f"belt.png: {scene.shape[1]}x{scene.shape[0]}, {len(labels)} beans ({labels.count('Black')} Black)")
    enc = os.path.join(OUT, "encoder.onnx")
    make_encoder(enc)
    info = subprocess.run([BEANCTL, "model", "info", enc], capture_output=True, text=True, check=True).stdout
    fingerprint = next(l.split(":", 1)[1].strip() for l in info.splitlines() if l.lower().startswith("fingerprint"))
    crops = np.concatenate([make_crops(rng, GOOD, 60), make_crops(rng, BLACK, 60)])
    names = ["Normal"] * 60 + ["Black"] * 60
    mean, std = np.array([0.485, 0.456, 0.406], np.float32), np.array([0.229, 0.224, 0.225], np.float32)
    x = ((crops / 255.0 - mean) / std).transpose(0, 3, 1, 2).astype(np.float32)
    store = os.path.join(OUT, "store")
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "x.npy"), np.ascontiguousarray(x))
        subprocess.run([BEANCTL, "model", "run", enc, "--input", os.path.join(d, "x.npy"), "--output", os.path.join(d, "v.npy")], check=True)
        with open(os.path.join(d, "labels.txt"), "w") as f:
            f.write("\n".join(names) + "\n")
        subprocess.run(["rm", "-rf", store], check=True)
        subprocess.run([BEANCTL, "store", "add", "--store", store, "--vectors", os.path.join(d, "v.npy"),
                        "--labels", os.path.join(d, "labels.txt"), "--fingerprint", fingerprint,
                        "--metric", "cosine", "--author", "make_demo_assets.py"], check=True)
    subprocess.run([BEANCTL, "store", "info", "--store", store], check=True)

if __name__ == "__main__":
    main()
