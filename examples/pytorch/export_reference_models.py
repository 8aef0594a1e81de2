#!/usr/bin/env python3
"""Export small PyTorch models to ONNX together with PyTorch reference values.

For every model this writes a folder ``<out>/<name>/`` holding

* ``model.onnx``     - the forward graph, exported with ``torch.onnx.export``
                       (opset 17, eval mode, parameters stored as initializers,
                       symbolic batch axis and, for the transformer, a symbolic
                       sequence axis);
* ``reference.json`` - a fixed input batch, fixed labels/targets, and what
                       PyTorch autograd computes for them in float32: the model
                       output, the loss, and the gradient of the loss with
                       respect to every ONNX initializer that holds a
                       trainable ``nn.Parameter``.

The TypeScript autodiff tests build a training graph from ``model.onnx`` and
compare their loss and gradients against ``reference.json``.

Gradients are keyed by the ONNX initializer name as it appears in
``model.onnx``. Each initializer is mapped back to its PyTorch parameter by
name when the exporter kept the parameter name, otherwise by value (an exact
copy, or an exact transposed copy, of exactly one parameter; the gradient is
transposed to match). Initializers that hold buffers (BatchNorm running
statistics) or other constants are listed under ``"frozen"``. The script stops
with an error when an initializer cannot be mapped unambiguously, or when a
trainable parameter does not reach the graph as exactly one initializer.

Run with the system Python that has PyTorch installed:

    /usr/bin/python3 examples/pytorch/export_reference_models.py --out test/fixtures/pytorch

Export settings: the model is put in eval mode and exported with
``training=TrainingMode.PRESERVE`` (not ``EVAL``, whose extra peephole pass
fuses BatchNorm into the preceding Conv) and ``do_constant_folding=False``, so
BatchNormalization stays a node with its running statistics as initializers,
and every initializer keeps its PyTorch parameter name. The export runs under
``torch.enable_grad()`` so that TransformerEncoderLayer does not take its fused
fast path, which has no ONNX export.

The output is deterministic: fixed seeds, deterministic algorithms, a single
CPU thread and no wall-clock or path information in the files.
"""

import argparse
import io
import json
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper
import torch
import torch.nn as nn
import torch.nn.functional as F

OPSET = 17
BATCH = 4
SEQ_LEN = 7

# A float initializer that matches no parameter and no buffer is an error,
# unless it has at most this many elements (a scalar constant, not a weight).
MAX_CONSTANT_ELEMENTS = 1


# --------------------------------------------------------------------------
# Reproducibility
# --------------------------------------------------------------------------

def make_deterministic():
    """Pin down every source of nondeterminism we rely on."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)  # reductions in a fixed order
    torch.backends.mkldnn.enabled = False  # plain reference CPU kernels


def perturb_parameters(model, generator, scale=0.1):
    """Add small seeded noise to every parameter.

    Default initialisations give several parameters identical values
    (LayerNorm/BatchNorm weights are all ones, their biases all zeros). The
    ONNX exporter deduplicates initializers with equal values in eval mode, and
    equal values would also make mapping by value ambiguous, so every
    parameter gets distinct values. It also makes the reference stronger:
    gamma != 1 and beta != 0 exercise every term of the normalisation
    gradients.
    """
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.add_(scale * torch.randn(p.shape, generator=generator))


# --------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------

class MLP(nn.Module):
    """Linear(20,32) -> LayerNorm(32) -> GELU (exact, erf) -> Linear(32,5)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(20, 32)
        self.norm = nn.LayerNorm(32)
        self.act = nn.GELU(approximate="none")
        self.fc2 = nn.Linear(32, 5)

    def forward(self, x):
        return self.fc2(self.act(self.norm(self.fc1(x))))


class SmallCNN(nn.Module):
    """A tiny MobileNet-like CNN over 3x12x12 images.

    Spatial sizes: 12x12 -conv3x3/p1-> 12x12 -dw3x3/s2/p1-> 6x6 -1x1-> 6x6
    -maxpool2-> 3x3 -avgpool3/s1/p1 (pads excluded)-> 3x3 -global avg-> 1x1.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, kernel_size=3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.act1 = nn.ReLU6()
        self.dw = nn.Conv2d(8, 8, kernel_size=3, stride=2, padding=1, groups=8)
        self.act2 = nn.ReLU()
        self.pw = nn.Conv2d(8, 16, kernel_size=1, groups=2)
        self.maxpool = nn.MaxPool2d(2)
        self.avgpool = nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.act2(self.dw(x))
        x = self.pw(x)
        x = self.maxpool(x)
        x = self.avgpool(x)
        x = torch.clamp(x, min=-1.0, max=2.0)
        x = self.flatten(self.gap(x))
        return self.fc(x)


class TinyTransformer(nn.Module):
    """Embedding(50,16) -> one TransformerEncoderLayer -> mean over seq -> Linear(16,3)."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 16)
        self.encoder = nn.TransformerEncoderLayer(
            d_model=16,
            nhead=2,
            dim_feedforward=32,
            dropout=0.1,
            activation="gelu",
            batch_first=True,
        )
        self.head = nn.Linear(16, 3)

    def forward(self, tokens):
        h = self.encoder(self.embed(tokens))
        return self.head(h.mean(dim=1))


# --------------------------------------------------------------------------
# Fixture specifications
# --------------------------------------------------------------------------

def spec_mlp(seed, loss):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = MLP()
    perturb_parameters(model, g)
    x = torch.randn(BATCH, 20, generator=g)
    if loss == "cross_entropy":
        labels = torch.randint(0, 5, (BATCH,), generator=g, dtype=torch.int64)
    else:
        labels = torch.randn(BATCH, 5, generator=g)
    return model, {"x": x}, labels, {"x": {0: "batch"}}


def spec_cnn(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = SmallCNN()
    perturb_parameters(model, g)
    # Give BatchNorm non-trivial running statistics: a few training-mode
    # forward passes over shifted/scaled random batches (no parameter update).
    model.train()
    with torch.no_grad():
        for _ in range(5):
            model(0.5 + 2.0 * torch.randn(8, 3, 12, 12, generator=g))
    model.eval()
    # Rescale a few parameters so that, on the fixed batch, both ends of both
    # Clip nodes are active (ReLU6 clips at 0 and 6, clamp at -1 and 2):
    # otherwise the Clip gradients would never be tested against zero.
    with torch.no_grad():
        model.bn1.weight.mul_(4.0)
        model.pw.weight.mul_(3.0)
        model.pw.bias.sub_(0.8)
    x = torch.randn(BATCH, 3, 12, 12, generator=g)
    labels = torch.randint(0, 4, (BATCH,), generator=g, dtype=torch.int64)
    check_cnn_activations(model, x)
    return model, {"x": x}, labels, {"x": {0: "batch"}}


def check_cnn_activations(model, x, margin=1e-4):
    """Assert that every Clip/ReLU/MaxPool in the CNN is exercised and unambiguous.

    Each clip bound must be hit by some elements, and no pre-activation may lie
    within ``margin`` of a kink (where the derivative is a convention), and no
    MaxPool window may have a near-tie.
    """
    with torch.no_grad():
        a = model.bn1(model.conv1(x))
        b = model.dw(model.act1(a))
        c = model.pw(model.act2(b))
        d = model.avgpool(model.maxpool(c))
    for t, lo, hi, what in ((a, 0.0, 6.0, "ReLU6"), (b, 0.0, None, "ReLU"), (d, -1.0, 2.0, "clamp")):
        for bound in (lo, hi):
            if bound is None:
                continue
            below, above = (t < bound).float().mean().item(), (t > bound).float().mean().item()
            if min(below, above) == 0.0:
                raise RuntimeError(f"{what}: bound {bound} is never crossed")
            if (t - bound).abs().min().item() < margin:
                raise RuntimeError(f"{what}: a value lies within {margin} of the bound {bound}")
    windows = c.unfold(2, 2, 2).unfold(3, 2, 2).reshape(*c.shape[:2], 3, 3, 4)
    top2 = windows.topk(2, dim=-1).values
    if (top2[..., 0] - top2[..., 1]).min().item() < margin:
        raise RuntimeError("MaxPool: a window has a near-tie")


def spec_transformer(seed):
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = TinyTransformer()
    perturb_parameters(model, g)
    tokens = torch.randint(0, 50, (BATCH, SEQ_LEN), generator=g, dtype=torch.int64)
    labels = torch.randint(0, 3, (BATCH,), generator=g, dtype=torch.int64)
    return model, {"tokens": tokens}, labels, {"tokens": {0: "batch", 1: "seq"}}


FIXTURES = [
    # name, description, loss, builder, op types that must be in the graph
    (
        "mlp",
        "Linear(20,32) -> LayerNorm(32) -> GELU(erf) -> Linear(32,5); cross-entropy loss",
        "cross_entropy",
        lambda: spec_mlp(seed=1234, loss="cross_entropy"),
        {"Gemm", "LayerNormalization", "Erf"},
    ),
    (
        "cnn",
        "Conv -> BatchNorm(frozen stats) -> ReLU6 -> depthwise Conv(s2) -> ReLU -> grouped 1x1 Conv"
        " -> MaxPool -> AvgPool(pads excluded) -> clamp -> GlobalAvgPool -> Linear; cross-entropy loss",
        "cross_entropy",
        lambda: spec_cnn(seed=2345),
        {"Conv", "BatchNormalization", "Clip", "Relu", "MaxPool", "AveragePool",
         "GlobalAveragePool", "Flatten", "Gemm"},
    ),
    (
        "transformer",
        "Embedding(50,16) -> TransformerEncoderLayer(d16,h2,ff32,gelu,post-norm) -> mean over seq"
        " -> Linear(16,3); cross-entropy loss",
        "cross_entropy",
        lambda: spec_transformer(seed=3456),
        {"Gather", "MatMul", "Softmax", "LayerNormalization", "Erf", "ReduceMean"},
    ),
    (
        "mlp_mse",
        "Linear(20,32) -> LayerNorm(32) -> GELU(erf) -> Linear(32,5); mean-squared-error loss",
        "mse",
        lambda: spec_mlp(seed=4567, loss="mse"),
        {"Gemm", "LayerNormalization", "Erf"},
    ),
]


# --------------------------------------------------------------------------
# Export, reference computation and initializer mapping
# --------------------------------------------------------------------------

def export_onnx(model, inputs, dynamic_axes):
    """Export ``model`` (eval mode) and return the serialized ModelProto bytes."""
    if any(m.training for m in model.modules()):
        raise RuntimeError("model must be in eval mode before export")
    names = list(inputs.keys())
    axes = dict(dynamic_axes)
    axes["logits"] = {0: "batch"}
    buf = io.BytesIO()
    # Under enable_grad with parameters requiring grad, TransformerEncoderLayer
    # and MultiheadAttention skip their fused "fast path" kernels
    # (torch._transformer_encoder_layer_fwd / _native_multi_head_attention),
    # which have no ONNX export; the traced graph then uses standard ops.
    with torch.enable_grad():
        torch.onnx.export(
            model,
            tuple(inputs[n] for n in names),
            buf,
            export_params=True,
            opset_version=OPSET,
            do_constant_folding=False,  # keep BatchNormalization un-fused
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            # The model is already in eval mode (dropout off, BatchNorm on
            # running statistics), and PRESERVE keeps it so. We do not pass
            # TrainingMode.EVAL because that also runs the exporter's
            # eval-mode peephole pass, which folds BatchNorm into the
            # preceding Conv even with do_constant_folding=False.
            training=torch.onnx.TrainingMode.PRESERVE,
        )
    return buf.getvalue()


def compute_reference(model, inputs, labels, loss_kind):
    """Forward + backward in float32, eval mode. Returns (logits, loss, grads)."""
    model.eval()
    model.zero_grad(set_to_none=True)
    logits = model(*inputs.values())
    if loss_kind == "cross_entropy":
        loss = F.cross_entropy(logits, labels)
    elif loss_kind == "mse":
        loss = F.mse_loss(logits, labels)
    else:
        raise ValueError(loss_kind)
    loss.backward()
    grads = {}
    for name, p in model.named_parameters():
        if p.requires_grad:
            if p.grad is None:
                raise RuntimeError(f"parameter {name} got no gradient")
            grads[name] = p.grad.detach().numpy().astype(np.float32)
    return logits.detach().numpy().astype(np.float32), loss.detach().numpy().astype(np.float32), grads


def map_initializers(onnx_model, model):
    """Map every ONNX initializer to a trainable parameter or to "frozen".

    Returns (mapping, frozen) where mapping is a list of
    (initializer name, parameter name, transposed: bool) in graph order.
    """
    params = {n: p.detach().numpy() for n, p in model.named_parameters() if p.requires_grad}
    buffers = {n: b.detach().numpy() for n, b in model.named_buffers()}
    mapping, frozen = [], []
    for init in onnx_model.graph.initializer:
        value = numpy_helper.to_array(init)
        name = init.name
        if name in params:
            if not (value.shape == params[name].shape and np.array_equal(value, params[name])):
                raise RuntimeError(f"initializer {name} does not hold the value of the parameter of that name")
            mapping.append((name, name, False))
            continue
        if name in buffers:
            frozen.append(name)
            continue
        if value.dtype.kind != "f":
            frozen.append(name)  # integer shape/index constants
            continue
        matches = []
        for pname, pval in params.items():
            if value.shape == pval.shape and np.array_equal(value, pval):
                matches.append((pname, False))
            elif pval.ndim == 2 and value.shape == pval.T.shape and np.array_equal(value, pval.T):
                matches.append((pname, True))
        buffer_matches = [b for b, bval in buffers.items()
                          if bval.shape == value.shape and np.array_equal(bval, value)]
        if len(matches) == 1 and not buffer_matches:
            mapping.append((name, matches[0][0], matches[0][1]))
        elif not matches and buffer_matches:
            frozen.append(name)
        elif not matches and value.size <= MAX_CONSTANT_ELEMENTS:
            frozen.append(name)  # a scalar constant, not a parameter
        else:
            raise RuntimeError(
                f"cannot map initializer {name} (shape {value.shape}): "
                f"parameter matches {matches}, buffer matches {buffer_matches}")
    # Every trainable parameter must reach the graph as exactly one initializer,
    # otherwise the per-initializer gradient would not be the parameter gradient.
    used = [pname for _, pname, _ in mapping]
    for pname in params:
        if used.count(pname) != 1:
            raise RuntimeError(f"parameter {pname} appears as {used.count(pname)} initializers")
    return mapping, frozen


# --------------------------------------------------------------------------
# JSON output
# --------------------------------------------------------------------------

def floats(arr):
    """Flat row-major list of float32 values as Python floats (exact)."""
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    return [float(v) for v in arr.ravel()]


def ints(arr):
    return [int(v) for v in np.ascontiguousarray(arr).ravel()]


def tensor_entry(arr, with_dtype=True):
    arr = np.asarray(arr)
    entry = {}
    if with_dtype:
        entry["dtype"] = {np.dtype(np.float32): "float32", np.dtype(np.int64): "int64"}[arr.dtype]
    entry["dims"] = list(arr.shape)
    entry["data"] = floats(arr) if arr.dtype == np.float32 else ints(arr)
    return entry


def to_json(obj, indent=0):
    """Indented JSON, but with number lists and leaf tensor objects on one line."""
    pad = "  " * indent
    if isinstance(obj, dict):
        if "data" in obj:  # a tensor entry: keep it on one line
            return json.dumps(obj, allow_nan=False, separators=(", ", ": "))
        if not obj:
            return "{}"
        items = [f'{pad}  {json.dumps(k)}: {to_json(v, indent + 1)}' for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    return json.dumps(obj, allow_nan=False, separators=(", ", ": "))


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def build_fixture(name, description, loss_kind, builder, required_ops, out_dir):
    model, inputs, labels, dynamic_axes = builder()
    model.eval()

    onnx_bytes = export_onnx(model, inputs, dynamic_axes)
    onnx_model = onnx.load_from_string(onnx_bytes)
    onnx.checker.check_model(onnx_model, full_check=True)

    # Graph sanity: only standard-domain ops, and the ones we expect.
    op_types = [n.op_type for n in onnx_model.graph.node]
    domains = {n.domain for n in onnx_model.graph.node}
    if domains - {"", "ai.onnx"}:
        raise RuntimeError(f"{name}: non-standard op domains {domains}")
    missing = required_ops - set(op_types)
    if missing:
        raise RuntimeError(f"{name}: expected op types missing from graph: {sorted(missing)}")
    graph_inputs = [i.name for i in onnx_model.graph.input]
    if graph_inputs != list(inputs.keys()):
        raise RuntimeError(f"{name}: graph inputs {graph_inputs} (initializers must not be inputs)")
    if [o.name for o in onnx_model.graph.output] != ["logits"]:
        raise RuntimeError(f"{name}: unexpected graph outputs")
    for vi in list(onnx_model.graph.input) + list(onnx_model.graph.output):
        if not vi.type.tensor_type.shape.dim[0].dim_param:
            raise RuntimeError(f"{name}: batch axis of {vi.name} is not symbolic")
    if name == "cnn":
        groups = sorted(a.i for n in onnx_model.graph.node if n.op_type == "Conv"
                        for a in n.attribute if a.name == "group")
        if 8 not in groups or 2 not in groups:
            raise RuntimeError(f"cnn: Conv group attributes {groups}, expected 8 and 2")

    logits, loss, grads = compute_reference(model, inputs, labels, loss_kind)
    mapping, frozen = map_initializers(onnx_model, model)

    init_names = [i.name for i in onnx_model.graph.initializer]
    grad_entries = {}
    for init_name, pname, transposed in mapping:
        grad = grads[pname].T if transposed else grads[pname]
        grad_entries[init_name] = tensor_entry(grad, with_dtype=False)

    reference = {
        "description": description,
        "torch": torch.__version__,
        "opset": OPSET,
        "loss": loss_kind,
        "output": "logits",
        "inputs": {k: tensor_entry(v.numpy()) for k, v in inputs.items()},
        "labels": tensor_entry(labels.numpy()),
        "expected": {
            "loss": float(loss),
            "logits": tensor_entry(logits, with_dtype=False),
            "grads": grad_entries,
        },
        "frozen": frozen,
    }

    folder = os.path.join(out_dir, name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "model.onnx"), "wb") as f:
        f.write(onnx_bytes)
    with open(os.path.join(folder, "reference.json"), "w", encoding="utf-8") as f:
        f.write(to_json(reference) + "\n")

    # Report.
    print(f"== {name}: loss ({loss_kind}) = {float(loss)!r}")
    print(f"   inputs: {graph_inputs}, output: logits {list(logits.shape)}")
    print(f"   op types (in graph order): {op_types}")
    print(f"   op type counts: " + ", ".join(
        f"{t}x{op_types.count(t)}" for t in sorted(set(op_types))))
    for init_name, pname, transposed in mapping:
        note = "" if init_name == pname else f" <- {pname}" + (" (transposed)" if transposed else "")
        print(f"   grad   {init_name}{note} {list(grad_entries[init_name]['dims'])}")
    for f_name in frozen:
        print(f"   frozen {f_name}")
    assert set(init_names) == set(grad_entries) | set(frozen)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="output folder (one subfolder per model)")
    parser.add_argument("--only", nargs="*", help="only these fixtures")
    args = parser.parse_args(argv)

    make_deterministic()
    for name, description, loss_kind, builder, required_ops in FIXTURES:
        if args.only and name not in args.only:
            continue
        build_fixture(name, description, loss_kind, builder, required_ops, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
