#!/usr/bin/env python3
"""Independent check of the fixtures written by export_reference_models.py.

onnxruntime is not available for the system Python, so this script evaluates
each ``model.onnx`` with a small interpreter that maps every ONNX node onto a
PyTorch tensor operation (only the op types these fixtures use). The ONNX
initializers become leaf tensors with ``requires_grad``, so after computing the
loss from the graph output, autograd gives the gradient with respect to each
initializer *as named in the ONNX file*. The check then compares, against
``reference.json``:

* the graph output with ``expected.logits``,
* the loss with ``expected.loss``,
* the gradient of every initializer with ``expected.grads`` (and that the
  initializers without an entry are exactly the ``frozen`` ones, and get no
  gradient or are not floats).

This validates both the exported graph and the initializer-name mapping done
by the export script, independently of the PyTorch module code.

    /usr/bin/python3 examples/pytorch/check_reference.py test/fixtures/pytorch
"""

import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn.functional as F

ONNX_TO_TORCH_DTYPE = {
    onnx.TensorProto.FLOAT: torch.float32,
    onnx.TensorProto.DOUBLE: torch.float64,
    onnx.TensorProto.INT64: torch.int64,
    onnx.TensorProto.INT32: torch.int32,
    onnx.TensorProto.BOOL: torch.bool,
}


def attrs(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def ints_of(t):
    return [int(v) for v in t.reshape(-1).tolist()]


def symmetric_pads(pads, op):
    n = len(pads) // 2
    if list(pads[:n]) != list(pads[n:]):
        raise NotImplementedError(f"{op}: asymmetric pads {pads}")
    return list(pads[:n])


def run_node(node, ins):
    """Evaluate one ONNX node; ``ins`` are torch tensors (None for empty inputs)."""
    op, a = node.op_type, attrs(node)
    if op == "Constant":
        if set(a) != {"value"}:
            raise NotImplementedError(f"Constant with {sorted(a)}")
        return [torch.from_numpy(numpy_helper.to_array(a["value"]).copy())]
    if op == "Identity":
        return [ins[0]]
    if op == "Add":
        return [ins[0] + ins[1]]
    if op == "Sub":
        return [ins[0] - ins[1]]
    if op == "Mul":
        return [ins[0] * ins[1]]
    if op == "Div":
        if ins[0].is_floating_point():
            return [ins[0] / ins[1]]
        return [torch.div(ins[0], ins[1], rounding_mode="trunc")]
    if op == "Erf":
        return [torch.erf(ins[0])]
    if op == "Relu":
        return [torch.relu(ins[0])]
    if op == "Clip":
        x = ins[0]
        lo = ins[1] if len(ins) > 1 else None
        hi = ins[2] if len(ins) > 2 else None
        return [torch.clamp(x, min=None if lo is None else lo.item(), max=None if hi is None else hi.item())]
    if op == "Cast":
        return [ins[0].to(ONNX_TO_TORCH_DTYPE[a["to"]])]
    if op == "MatMul":
        return [torch.matmul(ins[0], ins[1])]
    if op == "Gemm":
        A, B = ins[0], ins[1]
        if a.get("transA", 0):
            A = A.t()
        if a.get("transB", 0):
            B = B.t()
        y = a.get("alpha", 1.0) * (A @ B)
        if len(ins) > 2 and ins[2] is not None:
            y = y + a.get("beta", 1.0) * ins[2]
        return [y]
    if op == "Softmax":
        return [torch.softmax(ins[0], dim=a.get("axis", -1))]
    if op == "LayerNormalization":
        x = ins[0]
        axis = a.get("axis", -1) % x.dim()
        return [F.layer_norm(x, x.shape[axis:], ins[1], ins[2] if len(ins) > 2 else None, a.get("epsilon", 1e-5))]
    if op == "BatchNormalization":
        if a.get("training_mode", 0):
            raise NotImplementedError("BatchNormalization in training mode")
        x, scale, bias, mean, var = ins
        shape = [1, -1] + [1] * (x.dim() - 2)
        inv = torch.rsqrt(var + a.get("epsilon", 1e-5))
        return [(x - mean.reshape(shape)) * (inv * scale).reshape(shape) + bias.reshape(shape)]
    if op == "Conv":
        x, w = ins[0], ins[1]
        b = ins[2] if len(ins) > 2 else None
        if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            raise NotImplementedError("Conv auto_pad")
        n = x.dim() - 2
        pads = symmetric_pads(a.get("pads", [0] * 2 * n), op)
        return [F.conv2d(x, w, b, stride=a.get("strides", [1] * n), padding=pads,
                         dilation=a.get("dilations", [1] * n), groups=a.get("group", 1))]
    if op == "MaxPool":
        n = ins[0].dim() - 2
        return [F.max_pool2d(ins[0], a["kernel_shape"], stride=a.get("strides", [1] * n),
                             padding=symmetric_pads(a.get("pads", [0] * 2 * n), op),
                             dilation=a.get("dilations", [1] * n), ceil_mode=bool(a.get("ceil_mode", 0)))]
    if op == "AveragePool":
        n = ins[0].dim() - 2
        return [F.avg_pool2d(ins[0], a["kernel_shape"], stride=a.get("strides", [1] * n),
                             padding=symmetric_pads(a.get("pads", [0] * 2 * n), op),
                             ceil_mode=bool(a.get("ceil_mode", 0)),
                             count_include_pad=bool(a.get("count_include_pad", 0)))]
    if op == "GlobalAveragePool":
        return [ins[0].mean(dim=tuple(range(2, ins[0].dim())), keepdim=True)]
    if op == "Flatten":
        x = ins[0]
        axis = a.get("axis", 1) % (x.dim() + 1) if x.dim() else 0
        return [x.reshape(int(np.prod(x.shape[:axis], dtype=np.int64)), -1)]
    if op == "ReduceMean":
        x = ins[0]
        axes = a.get("axes", list(range(x.dim())))
        return [x.mean(dim=tuple(axes), keepdim=bool(a.get("keepdims", 1)))]
    if op == "Shape":
        shape = list(ins[0].shape)
        return [torch.tensor(shape[a.get("start", 0):a.get("end", len(shape))], dtype=torch.int64)]
    if op == "Gather":
        data, idx = ins
        axis = a.get("axis", 0) % data.dim()
        idx = torch.where(idx < 0, idx + data.shape[axis], idx)
        out = torch.index_select(data, axis, idx.reshape(-1))
        return [out.reshape(list(data.shape[:axis]) + list(idx.shape) + list(data.shape[axis + 1:]))]
    if op == "Unsqueeze":
        x = ins[0]
        axes = sorted(v % (x.dim() + len(ints_of(ins[1]))) for v in ints_of(ins[1]))
        for ax in axes:
            x = x.unsqueeze(ax)
        return [x]
    if op == "Concat":
        return [torch.cat(ins, dim=a["axis"])]
    if op == "Reshape":
        if a.get("allowzero", 0):
            raise NotImplementedError("Reshape allowzero")
        x, shape = ins[0], ints_of(ins[1])
        shape = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return [x.reshape(shape)]
    if op == "Transpose":
        x = ins[0]
        return [x.permute(a.get("perm", list(reversed(range(x.dim())))))]
    if op == "Slice":
        x = ins[0]
        starts, ends = ints_of(ins[1]), ints_of(ins[2])
        axes = ints_of(ins[3]) if len(ins) > 3 and ins[3] is not None else list(range(len(starts)))
        steps = ints_of(ins[4]) if len(ins) > 4 and ins[4] is not None else [1] * len(starts)
        index = [slice(None)] * x.dim()
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if st != 1:
                raise NotImplementedError("Slice step != 1")
            index[ax % x.dim()] = slice(s, e)  # Python slicing clamps like ONNX does
        return [x[tuple(index)]]
    raise NotImplementedError(f"op {op}")


def evaluate(model, feeds):
    """Run the graph; returns (outputs dict, initializer leaf tensors dict)."""
    env, leaves = dict(feeds), {}
    for init in model.graph.initializer:
        t = torch.from_numpy(numpy_helper.to_array(init).copy())
        if t.is_floating_point():
            t.requires_grad_(True)
        env[init.name] = leaves[init.name] = t
    for node in model.graph.node:
        ins = [env[n] if n else None for n in node.input]
        while ins and ins[-1] is None:
            ins.pop()
        outs = run_node(node, ins)
        for name, value in zip(node.output, outs):
            env[name] = value
    return {o.name: env[o.name] for o in model.graph.output}, leaves


def to_tensor(entry, dtype=None):
    dtype = dtype or {"float32": torch.float32, "int64": torch.int64}[entry["dtype"]]
    return torch.tensor(entry["data"], dtype=dtype).reshape(entry["dims"])


def close(name, got, want, rtol, atol):
    got = got.detach().to(torch.float64)
    want = want.to(torch.float64)
    if list(got.shape) != list(want.shape):
        raise AssertionError(f"{name}: shape {list(got.shape)} != {list(want.shape)}")
    err = (got - want).abs().max().item() if got.numel() else 0.0
    tol = atol + rtol * want.abs().max().item()
    if not err <= tol:
        raise AssertionError(f"{name}: max abs error {err:.3g} > {tol:.3g}")
    return err


def check_fixture(folder, rtol=1e-5, atol=1e-6):
    model = onnx.load(os.path.join(folder, "model.onnx"))
    onnx.checker.check_model(model, full_check=True)
    with open(os.path.join(folder, "reference.json"), encoding="utf-8") as f:
        ref = json.load(f)
    torch.set_num_threads(1)
    feeds = {k: to_tensor(v) for k, v in ref["inputs"].items()}
    outputs, leaves = evaluate(model, feeds)
    logits = outputs[ref["output"]]
    exp = ref["expected"]
    worst = close("logits", logits, to_tensor(exp["logits"], torch.float32), rtol, atol)

    labels = to_tensor(ref["labels"])
    if ref["loss"] == "cross_entropy":
        loss = F.cross_entropy(logits, labels)
    elif ref["loss"] == "mse":
        loss = F.mse_loss(logits, labels)
    else:
        raise ValueError(ref["loss"])
    close("loss", loss, torch.tensor(exp["loss"]), rtol, atol)
    loss.backward()

    grads, frozen = exp["grads"], set(ref["frozen"])
    if set(grads) & frozen or set(grads) | frozen != set(leaves):
        raise AssertionError("grads + frozen must partition the initializers")
    for name, leaf in leaves.items():
        if name in grads:
            if leaf.grad is None:
                raise AssertionError(f"{name}: no gradient flows to it in the graph")
            worst = max(worst, close(f"grad {name}", leaf.grad, to_tensor(grads[name], torch.float32), rtol, atol))
    return float(loss), worst


def main(argv):
    root = argv[1] if len(argv) > 1 else "test/fixtures/pytorch"
    for name in sorted(os.listdir(root)):
        folder = os.path.join(root, name)
        if os.path.isfile(os.path.join(folder, "reference.json")):
            loss, worst = check_fixture(folder)
            print(f"ok {name}: loss {loss:.7g}, max abs deviation {worst:.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
