#!/usr/bin/env python3
"""Wraps an encoder so that it embeds each crop in its four mirror poses (as is, flipped left-right,
flipped top-bottom, both) and returns the L2-normalised sum: pose averaging at inference, for
MODEL_CARD.md's measurement ("Measured at last: pose averaging at inference"). The flips are MatMuls
with a reversal matrix (and Transposes), which the project's runtime runs, so `beanctl eval
--encoder OUT.onnx` measures it directly. The branches share the original initializers.

    .venv/bin/python Benchmarks/pose-average-encoder.py IN.onnx OUT.onnx
"""
import sys, numpy as np, onnx
from onnx import helper, numpy_helper, TensorProto
src, dst = sys.argv[1], sys.argv[2]
m = onnx.load(src)
g = m.graph
inits = {t.name for t in g.initializer}
inp = [i for i in g.input if i.name not in inits][0]
out = g.output[0]
H = inp.type.tensor_type.shape.dim[2].dim_value
W = inp.type.tensor_type.shape.dim[3].dim_value
assert H == W
P = np.eye(W, dtype=np.float32)[::-1].copy()
new_inits = list(g.initializer) + [numpy_helper.from_array(P, "pose_flip")]
nodes = []
x = inp.name
# flipped inputs
nodes.append(helper.make_node("MatMul", [x, "pose_flip"], ["pose_w"]))            # flip W
nodes.append(helper.make_node("Transpose", [x], ["pose_t"], perm=[0, 1, 3, 2]))
nodes.append(helper.make_node("MatMul", ["pose_t", "pose_flip"], ["pose_th"]))
nodes.append(helper.make_node("Transpose", ["pose_th"], ["pose_h"], perm=[0, 1, 3, 2]))  # flip H
nodes.append(helper.make_node("MatMul", ["pose_h", "pose_flip"], ["pose_hw"]))     # both
branches = [x, "pose_w", "pose_h", "pose_hw"]
outs = []
for b, bin_ in enumerate(branches):
    pre = f"p{b}_"
    def rn(n):
        if n == "" or n in inits: return n
        if n == x: return bin_
        return pre + n
    for node in g.node:
        c = onnx.NodeProto(); c.CopyFrom(node)
        c.name = pre + (node.name or "n")
        del c.input[:]; c.input.extend([rn(i) for i in node.input])
        del c.output[:]; c.output.extend([rn(o) for o in node.output])
        nodes.append(c)
    outs.append(rn(out.name))
nodes.append(helper.make_node("Add", [outs[0], outs[1]], ["pose_s01"]))
nodes.append(helper.make_node("Add", [outs[2], outs[3]], ["pose_s23"]))
nodes.append(helper.make_node("Add", ["pose_s01", "pose_s23"], ["pose_sum"]))
nodes.append(helper.make_node("LpNormalization", ["pose_sum"], [out.name], axis=1, p=2))
graph = helper.make_graph(nodes, g.name + "_poses", [inp], [out], new_inits)
mm = helper.make_model(graph, opset_imports=m.opset_import, ir_version=m.ir_version)
for p in m.metadata_props:
    mm.metadata_props.add().CopyFrom(p)
onnx.checker.check_model(mm)
onnx.save(mm, dst)
