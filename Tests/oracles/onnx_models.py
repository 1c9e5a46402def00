"""ONNX models for the encoder-runtime oracle, built with the onnx helper API and seeded random
weights. The op patterns follow what PyTorch's exporters emit (PyTorch itself is not needed):

* TorchScript exporter, opset 17: BatchNorm already folded into Conv biases, GlobalAveragePool,
  Flatten, Gemm(transB=1), Identity nodes around initializers.
* dynamo exporter, opset 18: Conv + BatchNormalization, ReduceMean with an axes input, the
  Shape/Gather/Unsqueeze/Concat shape subgraph feeding Reshape, F.normalize as
  ReduceL2/Clip/Expand/Div.
"""
import zlib

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class Builder:
    def __init__(self, seed, opset=17):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits = [], []
        self.opset = opset
        self.n = 0

    def name(self, prefix):
        self.n += 1
        return f"{prefix}_{self.n}"

    def const(self, array, prefix="c", raw=True):
        nm = self.name(prefix)
        t = numpy_helper.from_array(np.asarray(array), nm)
        if not raw:
            # Typed fields instead of raw_data, as some exporters write them.
            arr = np.asarray(array)
            t = helper.make_tensor(nm, helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape, arr.flatten().tolist())
        self.inits.append(t)
        return nm

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self.name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=self.name("n_" + op), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, stride=1, pad=None, groups=1, bias=True, dilation=1, raw=True, **extra):
        fan_in = cin // groups * k * k
        w = (self.rng.standard_normal((cout, cin // groups, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        ins = [x, self.const(w, "W", raw=raw)]
        if bias:
            ins.append(self.const((self.rng.standard_normal(cout) * 0.1).astype(np.float32), "B", raw=raw))
        attrs = dict(kernel_shape=[k, k], strides=[stride, stride], group=groups, dilations=[dilation, dilation])
        if pad is not None:
            attrs["pads"] = [pad] * 4 if isinstance(pad, int) else pad
        attrs.update(extra)
        return self.node("Conv", ins, **attrs)

    def bn(self, x, c, gamma_scale=1.0):
        r = self.rng
        return self.node("BatchNormalization", [
            x,
            self.const((r.uniform(0.5, 1.5, c) * gamma_scale).astype(np.float32), "gamma"),
            self.const((r.standard_normal(c) * 0.1).astype(np.float32), "beta"),
            self.const((r.standard_normal(c) * 0.1).astype(np.float32), "mean"),
            self.const(r.uniform(0.5, 2.0, c).astype(np.float32), "var"),
        ], epsilon=1e-5)

    def model(self, x_name, x_shape, out, out_shape=None):
        inp = helper.make_tensor_value_info(x_name, TensorProto.FLOAT, x_shape)
        outp = helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)
        g = helper.make_graph(self.nodes, "g", [inp], [outp], initializer=self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", self.opset)], producer_name="beand-oracle")
        m.ir_version = 8
        if out_shape is not None:
            onnx.checker.check_model(m)
        else:
            # Let shape inference fill in the output type (the checker wants one).
            m = onnx.shape_inference.infer_shapes(m)
            outp = next((v for v in m.graph.value_info if v.name == out), None)
            if outp is not None:
                del m.graph.output[:]
                m.graph.output.extend([outp])
            onnx.checker.check_model(m)
        return m


def resnet18(seed=1, variant="torchscript", dynamic_spatial=False, head=128):
    """torchvision resnet18 with fc = Linear(512, head), as either exporter writes it."""
    opset = 17 if variant == "torchscript" else 18
    b = Builder(seed, opset)
    x = "input"
    fused = variant == "torchscript"

    def conv_bn(x, cin, cout, k, stride, pad, gamma=1.0):
        if fused:
            # TorchScript export folds eval-mode BN into the conv; emulate with scaled weights.
            y = b.conv(x, cin, cout, k, stride, pad, bias=True)
            return y
        return b.bn(b.conv(x, cin, cout, k, stride, pad, bias=False), cout, gamma)

    y = b.node("Relu", [conv_bn(x, 3, 64, 7, 2, 3)])
    y = b.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for cout, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
        for blk in range(2):
            s = stride if blk == 0 else 1
            h = b.node("Relu", [conv_bn(y, cin, cout, 3, s, 1)])
            h = conv_bn(h, cout, cout, 3, 1, 1, gamma=0.3)
            sc = y
            if s != 1 or cin != cout:
                sc = conv_bn(y, cin, cout, 1, s, 0)
            y = b.node("Relu", [b.node("Add", [h, sc])])
            cin = cout
    if variant == "torchscript":
        y = b.node("GlobalAveragePool", [y])
        y = b.node("Flatten", [y], axis=1)
        # Small head weights keep the outputs at magnitude ~1 despite unnormalised random features.
        w = b.const((b.rng.standard_normal((head, 512)) * 0.001).astype(np.float32), "fc_W")
        bias = b.node("Identity", [b.const((b.rng.standard_normal(head) * 0.1).astype(np.float32), "fc_B")])
        out = b.node("Gemm", [y, w, bias], alpha=1.0, beta=1.0, transB=1)
    else:
        y = b.node("ReduceMean", [y, b.const(np.array([-1, -2], np.int64), "axes")], keepdims=1)
        shp = b.node("Shape", [y])
        n = b.node("Gather", [shp, b.const(np.array(0, np.int64), "idx")], axis=0)
        n = b.node("Unsqueeze", [n, b.const(np.array([0], np.int64), "ax0")])
        tgt = b.node("Concat", [n, b.const(np.array([-1], np.int64), "m1")], axis=0)
        y = b.node("Reshape", [y, tgt])
        w = b.const((b.rng.standard_normal((head, 512)) * 0.05).astype(np.float32), "fc_W")
        y = b.node("Gemm", [y, w, b.const((b.rng.standard_normal(head) * 0.1).astype(np.float32), "fc_B")], transB=1)
        # F.normalize(y, dim=1)
        nrm = b.node("ReduceL2", [y, b.const(np.array([1], np.int64), "ax1")], keepdims=1)
        nrm = b.node("Clip", [nrm, b.const(np.array(1e-12, np.float32), "eps")])
        nrm = b.node("Expand", [nrm, b.node("Shape", [y])])
        out = b.node("Div", [y, nrm])
    hw = ["height", "width"] if dynamic_spatial else [64, 64]
    return b.model(x, ["batch", 3] + hw, out, ["batch", head])


def mobilenet_block(seed=2):
    """Inverted residual blocks (MobileNetV2 style): expand 1x1, depthwise 3x3, project, residual."""
    b = Builder(seed, 17)
    y = b.node("Clip", [b.bn(b.conv("input", 3, 16, 3, 2, 1, bias=False), 16),
                        b.const(np.array(0, np.float32), "lo"), b.const(np.array(6, np.float32), "hi")])
    cin = 16
    for cout, stride, expand in [(16, 1, 4), (24, 2, 4), (24, 1, 6)]:
        hidden = cin * expand
        h = b.node("Clip", [b.bn(b.conv(y, cin, hidden, 1, bias=False), hidden),
                            b.const(np.array(0, np.float32), "lo"), b.const(np.array(6, np.float32), "hi")])
        h = b.node("Clip", [b.bn(b.conv(h, hidden, hidden, 3, stride, 1, groups=hidden, bias=False), hidden),
                            b.const(np.array(0, np.float32), "lo"), b.const(np.array(6, np.float32), "hi")])
        h = b.bn(b.conv(h, hidden, cout, 1, bias=False), cout, 0.5)
        y = b.node("Add", [y, h]) if stride == 1 and cin == cout else h
        cin = cout
    y = b.node("GlobalAveragePool", [y])
    y = b.node("Flatten", [y])
    out = b.node("Gemm", [y, b.const((b.rng.standard_normal((32, cin)) * 0.2).astype(np.float32), "W"),
                          b.const(np.zeros(32, np.float32), "B")], transB=1)
    return b.model("input", ["batch", 3, 48, 48], out, ["batch", 32])


def autoencoder(seed=3):
    """Conv encoder → bottleneck vector → ConvTranspose decoder with a sigmoid output."""
    b = Builder(seed, 17)
    y = b.node("Relu", [b.conv("input", 3, 16, 3, 2, 1)])
    y = b.node("LeakyRelu", [b.conv(y, 16, 32, 3, 2, 1)], alpha=0.1)
    y = b.node("Relu", [b.conv(y, 32, 32, 3, 2, 1)])          # [N, 32, 4, 4]
    z = b.node("Flatten", [y])
    z = b.node("Gemm", [z, b.const((b.rng.standard_normal((64, 512)) * 0.05).astype(np.float32), "enc_W"),
                        b.const(np.zeros(64, np.float32), "enc_B")], transB=1)
    d = b.node("Gemm", [z, b.const((b.rng.standard_normal((512, 64)) * 0.1).astype(np.float32), "dec_W"),
                        b.const(np.zeros(512, np.float32), "dec_B")], transB=1)
    d = b.node("Reshape", [d, b.const(np.array([-1, 32, 4, 4], np.int64), "shape")])
    for cin, cout in [(32, 32), (32, 16)]:
        w = (b.rng.standard_normal((cin, cout, 4, 4)) * np.sqrt(1.0 / (cin * 4))).astype(np.float32)
        d = b.node("Relu", [b.node("ConvTranspose", [d, b.const(w, "Wt"), b.const((b.rng.standard_normal(cout) * 0.1).astype(np.float32), "Bt")],
                                   kernel_shape=[4, 4], strides=[2, 2], pads=[1, 1, 1, 1])])
    w = (b.rng.standard_normal((16, 3, 3, 3)) * 0.2).astype(np.float32)
    d = b.node("ConvTranspose", [d, b.const(w, "Wt")], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1])
    out = b.node("Sigmoid", [d])
    return b.model("input", ["batch", 3, 32, 32], out, ["batch", 3, 32, 32])


def op_cases():
    """(name, model, input shape) per operator/attribute combination."""
    cases = []

    def single(name, build, shape=(2, 8, 9, 9), opset=17, out_shape=None):
        b = Builder(zlib.crc32(name.encode()), opset)
        out = build(b, "input")
        cases.append((name, b.model("input", ["batch"] + list(shape[1:]), out, out_shape), shape))

    C = 8
    # Conv
    single("conv_k3_s1_p1", lambda b, x: b.conv(x, C, 12, 3, 1, 1))
    single("conv_k3_s2_p1", lambda b, x: b.conv(x, C, 12, 3, 2, 1))
    single("conv_k1", lambda b, x: b.conv(x, C, 12, 1))
    single("conv_k1_s2", lambda b, x: b.conv(x, C, 12, 1, 2, 0))
    single("conv_k7_s2_p3", lambda b, x: b.conv(x, C, 6, 7, 2, 3), shape=(2, 8, 16, 16))
    single("conv_k3_dil2", lambda b, x: b.conv(x, C, 12, 3, 1, 2, dilation=2))
    single("conv_group2", lambda b, x: b.conv(x, C, 12, 3, 1, 1, groups=2))
    single("conv_group4_s2", lambda b, x: b.conv(x, C, 8, 3, 2, 1, groups=4))
    single("conv_depthwise", lambda b, x: b.conv(x, C, C, 3, 1, 1, groups=C))
    single("conv_depthwise_s2_k5", lambda b, x: b.conv(x, C, C, 5, 2, 2, groups=C))
    single("conv_nobias", lambda b, x: b.conv(x, C, 12, 3, 1, 1, bias=False))
    single("conv_typed_fields", lambda b, x: b.conv(x, C, 12, 3, 1, 1, raw=False))
    single("conv_pads_asym", lambda b, x: b.conv(x, C, 12, 3, 1, [0, 1, 2, 0]))
    single("conv_autopad_same_upper", lambda b, x: b.conv(x, C, 12, 3, 2, None, auto_pad="SAME_UPPER"), shape=(2, 8, 10, 10))
    single("conv_autopad_same_lower", lambda b, x: b.conv(x, C, 12, 4, 2, None, auto_pad="SAME_LOWER"), shape=(2, 8, 10, 10))
    single("conv_autopad_valid", lambda b, x: b.conv(x, C, 12, 3, 2, None, auto_pad="VALID"))
    single("conv_rect_kernel", lambda b, x: b.node("Conv", [x, b.const(b.rng.standard_normal((4, C, 3, 1)).astype(np.float32))], kernel_shape=[3, 1], pads=[1, 0, 1, 0]))
    # Winograd path (3×3 stride 1, ≥16 channels): odd sizes leave partial 2×2 tiles.
    single("conv_winograd_odd", lambda b, x: b.conv(x, 16, 24, 3, 1, 1), shape=(2, 16, 9, 9))
    single("conv_winograd_pad0", lambda b, x: b.conv(x, 16, 16, 3, 1, 0), shape=(3, 16, 11, 8))
    single("conv_winograd_residual_relu", lambda b, x: b.node("Relu", [b.node("Add", [b.conv(x, 16, 16, 3, 1, 1), x])]), shape=(2, 16, 10, 7))
    single("conv_winograd_asym_pads", lambda b, x: b.conv(x, 16, 20, 3, 1, [1, 0, 0, 2]), shape=(2, 16, 12, 12))
    # ConvTranspose
    def ct(name, k, s, p, **kw):
        def f(b, x):
            w = (b.rng.standard_normal((C, 6, k, k)) * 0.3).astype(np.float32)
            ins = [x, b.const(w)]
            if kw.pop("bias", True):
                ins.append(b.const(b.rng.standard_normal(6).astype(np.float32)))
            attrs = dict(kernel_shape=[k, k], strides=[s, s])
            if p is not None:
                attrs["pads"] = [p] * 4
            attrs.update(kw)
            return b.node("ConvTranspose", ins, **attrs)
        single(name, f, shape=(2, C, 5, 5))
    ct("convT_k4_s2_p1", 4, 2, 1)
    ct("convT_k3_s2_p1_outpad1", 3, 2, 1, output_padding=[1, 1])
    ct("convT_k2_s2", 2, 2, 0)
    ct("convT_k3_s1_p1_nobias", 3, 1, 1, bias=False)
    ct("convT_k3_s2_dil2", 3, 2, 0, dilations=[2, 2])
    ct("convT_output_shape", 3, 2, None, output_shape=[10, 10])
    # BatchNormalization: after a conv (folded) and standalone (after Add)
    single("bn_after_conv", lambda b, x: b.bn(b.conv(x, C, 12, 3, 1, 1), 12))
    single("bn_standalone", lambda b, x: b.bn(b.node("Add", [x, x]), C))
    # Activations
    single("relu", lambda b, x: b.node("Relu", [x]))
    single("leakyrelu", lambda b, x: b.node("LeakyRelu", [x], alpha=0.2))
    single("sigmoid", lambda b, x: b.node("Sigmoid", [x]))
    single("clip_min_max", lambda b, x: b.node("Clip", [x, b.const(np.array(-0.5, np.float32)), b.const(np.array(0.7, np.float32))]))
    single("clip_min_only", lambda b, x: b.node("Clip", [x, b.const(np.array(0.1, np.float32))]))
    single("conv_relu_fused", lambda b, x: b.node("Relu", [b.conv(x, C, 12, 3, 1, 1)]))
    single("conv_clip_fused", lambda b, x: b.node("Clip", [b.conv(x, C, 12, 3, 1, 1), b.const(np.array(0, np.float32)), b.const(np.array(6, np.float32))]))
    single("conv_add_relu_fused", lambda b, x: b.node("Relu", [b.node("Add", [b.conv(x, C, C, 3, 1, 1), x])]))
    # Broadcasting binary ops
    for op in ["Add", "Sub", "Mul", "Div"]:
        single(f"{op.lower()}_const_c11", lambda b, x, op=op: b.node(op, [x, b.const(b.rng.uniform(0.5, 2, (C, 1, 1)).astype(np.float32))]))
        single(f"{op.lower()}_runtime_same", lambda b, x, op=op: b.node(op, [b.node("Relu", [x]), b.node("Sigmoid", [x])]))
    single("mul_scalar", lambda b, x: b.node("Mul", [x, b.const(np.array(0.5, np.float32))]))
    single("sub_const_first", lambda b, x: b.node("Sub", [b.const(b.rng.standard_normal((1, C, 1, 1)).astype(np.float32)), x]))
    single("add_const_w", lambda b, x: b.node("Add", [x, b.const(b.rng.standard_normal(9).astype(np.float32))]))
    single("mul_se_gate", lambda b, x: b.node("Mul", [x, b.node("Sigmoid", [b.node("GlobalAveragePool", [x])])]))
    single("add_rank2", lambda b, x: b.node("Add", [b.node("Flatten", [x]), b.const(b.rng.standard_normal((1, C * 81)).astype(np.float32))]))
    # Pooling
    single("maxpool_k3_s2_p1", lambda b, x: b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    single("maxpool_k2_s2", lambda b, x: b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2]))
    single("maxpool_ceil", lambda b, x: b.node("MaxPool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
    single("maxpool_dil2", lambda b, x: b.node("MaxPool", [x], kernel_shape=[2, 2], dilations=[2, 2]))
    single("maxpool_same_upper", lambda b, x: b.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], auto_pad="SAME_UPPER"), shape=(2, 8, 10, 10))
    single("avgpool_k3_p1_excl", lambda b, x: b.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1]))
    single("avgpool_k3_p1_incl", lambda b, x: b.node("AveragePool", [x], kernel_shape=[3, 3], pads=[1, 1, 1, 1], count_include_pad=1))
    single("avgpool_k2_s2_ceil", lambda b, x: b.node("AveragePool", [x], kernel_shape=[2, 2], strides=[2, 2], ceil_mode=1))
    single("globalavgpool", lambda b, x: b.node("GlobalAveragePool", [x]))
    # Reductions
    single("reducemean_hw_keep_op18", lambda b, x: b.node("ReduceMean", [x, b.const(np.array([2, 3], np.int64))], keepdims=1), opset=18)
    single("reducemean_hw_nokeep_op18", lambda b, x: b.node("ReduceMean", [x, b.const(np.array([-1, -2], np.int64))], keepdims=0), opset=18)
    single("reducemean_attr_op13", lambda b, x: b.node("ReduceMean", [x], axes=[2, 3], keepdims=1), opset=13)
    single("reducemean_channel", lambda b, x: b.node("ReduceMean", [x], axes=[1], keepdims=1), opset=13)
    single("reducesum_hw", lambda b, x: b.node("ReduceSum", [x, b.const(np.array([2, 3], np.int64))], keepdims=0))
    single("reducemax_channel", lambda b, x: b.node("ReduceMax", [b.conv(x, C, 6, 3, 1, 1)], axes=[1], keepdims=1))
    single("reducemax_hw_nokeep", lambda b, x: b.node("ReduceMax", [x], axes=[2, 3], keepdims=0))
    single("reducemin_hw_keep", lambda b, x: b.node("ReduceMin", [x], axes=[-2, -1], keepdims=1))
    single("reducemax_hw_op18", lambda b, x: b.node("ReduceMax", [x, b.const(np.array([2, 3], np.int64))], keepdims=0), opset=18)
    # Shapes
    single("flatten_axis1", lambda b, x: b.node("Flatten", [b.conv(x, C, 4, 3, 1, 1)], axis=1))
    single("reshape_const", lambda b, x: b.node("Reshape", [b.conv(x, C, 4, 3, 1, 1), b.const(np.array([0, -1], np.int64))]))
    single("reshape_shape_subgraph", lambda b, x: b.node("Reshape", [b.node("Relu", [x]), b.node("Concat", [
        b.node("Unsqueeze", [b.node("Gather", [b.node("Shape", [x]), b.const(np.array(0, np.int64))], axis=0), b.const(np.array([0], np.int64))]),
        b.const(np.array([-1], np.int64))], axis=0)]))
    single("identity", lambda b, x: b.node("Identity", [b.node("Relu", [x])]))
    single("unsqueeze_squeeze", lambda b, x: b.node("Squeeze", [b.node("Unsqueeze", [b.node("GlobalAveragePool", [x]), b.const(np.array([1], np.int64))]), b.const(np.array([1, 3, 4], np.int64))]))
    single("transpose", lambda b, x: b.node("Transpose", [b.node("Relu", [x])], perm=[0, 2, 3, 1]))
    # Pad
    single("pad_constant", lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 1, 2, 0, 0, 2, 1], np.int64)), b.const(np.array(0.5, np.float32))], mode="constant"))
    single("pad_reflect", lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 2, 1, 0, 0, 1, 2], np.int64))], mode="reflect"))
    single("pad_edge", lambda b, x: b.node("Pad", [x, b.const(np.array([0, 0, 1, 3, 0, 0, 2, 0], np.int64))], mode="edge"))
    single("pad_axes_op18", lambda b, x: b.node("Pad", [x, b.const(np.array([1, 1, 2, 2], np.int64)), b.const(np.array(0, np.float32)), b.const(np.array([2, 3], np.int64))]), opset=18)
    # Dense
    single("gemm_transB_bias", lambda b, x: b.node("Gemm", [b.node("Flatten", [x]), b.const(b.rng.standard_normal((10, C * 81)).astype(np.float32) * 0.05), b.const(b.rng.standard_normal(10).astype(np.float32))], transB=1))
    single("gemm_alpha_beta", lambda b, x: b.node("Gemm", [b.node("Flatten", [x]), b.const(b.rng.standard_normal((C * 81, 10)).astype(np.float32) * 0.05), b.const(b.rng.standard_normal((1, 10)).astype(np.float32))], alpha=0.5, beta=2.0))
    single("gemm_transA", lambda b, x: b.node("Gemm", [b.node("Transpose", [b.node("Flatten", [x])], perm=[1, 0]), b.const(b.rng.standard_normal((C * 81, 10)).astype(np.float32) * 0.05)], transA=1))
    single("matmul_add", lambda b, x: b.node("Add", [b.node("MatMul", [b.node("Flatten", [x]), b.const(b.rng.standard_normal((C * 81, 10)).astype(np.float32) * 0.05)]), b.const(b.rng.standard_normal(10).astype(np.float32))]))
    # Concat
    single("concat_channels", lambda b, x: b.node("Concat", [b.conv(x, C, 4, 3, 1, 1), b.conv(x, C, 6, 1), x], axis=1))
    single("concat_width", lambda b, x: b.node("Concat", [b.conv(x, C, 4, 3, 1, 1), b.conv(x, C, 4, 1)], axis=3))
    # Resize (nearest)
    single("resize_scales2_asym_floor", lambda b, x: b.node("Resize", [x, "", b.const(np.array([1, 1, 2, 2], np.float32))], mode="nearest", coordinate_transformation_mode="asymmetric", nearest_mode="floor"))
    # sizes as PyTorch computes them: Concat(Shape(x)[0:2], [14, 5]).
    single("resize_sizes_halfpixel", lambda b, x: b.node("Resize", [x, "", "", b.node("Concat", [
        b.node("Slice", [b.node("Shape", [x]), b.const(np.array([0], np.int64)), b.const(np.array([2], np.int64))]),
        b.const(np.array([14, 5], np.int64))], axis=0)], mode="nearest"))
    single("resize_align_corners_ceil", lambda b, x: b.node("Resize", [x, "", b.const(np.array([1, 1, 1.5, 1.5], np.float32))], mode="nearest", coordinate_transformation_mode="align_corners", nearest_mode="ceil"))
    single("resize_pytorch_half_pixel", lambda b, x: b.node("Resize", [x, "", b.const(np.array([1, 1, 3, 3], np.float32))], mode="nearest", coordinate_transformation_mode="pytorch_half_pixel", nearest_mode="round_prefer_ceil"))
    # L2 normalisation
    single("lpnorm_axis1", lambda b, x: b.node("LpNormalization", [b.node("Flatten", [x])], axis=1, p=2))
    single("lpnorm_p1_channels", lambda b, x: b.node("LpNormalization", [x], axis=1, p=1))
    single("reducel2_div", lambda b, x: (lambda y: b.node("Div", [y, b.node("ReduceL2", [y], axes=[1], keepdims=1)]))(b.node("Flatten", [x])), opset=13)
    return cases
