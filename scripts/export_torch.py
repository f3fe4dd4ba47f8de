#!/usr/bin/env python3
"""Export a PyTorch model to ONNX for dropout-serve: every dropout a live Dropout op, BatchNorm untouched.

Use it as a library (the function `export`) or from the command line on a module saved with torch.save:

    python3 scripts/export_torch.py model.pt model.onnx --input input:1,3,96,96
    python3 scripts/export_torch.py model.pt model.onnx --input input_ids:1,16:int64 --input attention_mask:1,16:int64

It avoids the traps of exporting a model "in train mode" (torch 1.13 to 2.x, the TorchScript exporter):
- `torch.onnx.export(model.train(), training=TrainingMode.TRAINING)` runs the model once in training mode, so
  BatchNorm's running statistics change in the file (measured: up to 0.29 in mobilenet_v3_small's eval logits).
  Here the model is put in eval mode and only the modules whose randomness is MC dropout go to train mode
  (Dropout, AlphaDropout, MultiheadAttention, the Transformer layers), and the export uses
  TrainingMode.PRESERVE: each module is exported in the mode it is in. The state dict is compared before and
  after: the export fails if any buffer changed.
- `nn.Dropout2d` / `Dropout3d` / `Dropout1d` (feature dropout) cannot be exported in training mode by torch 1.13
  (`aten::feature_dropout`): they are replaced by `x * dropout(ones[N, C, 1, ...])`, which has the same
  distribution and exports as a Dropout op on the mask.
- `TransformerEncoderLayer` (and `TransformerEncoder`) in eval mode take a fast path that applies no dropout at
  all: they are put in train mode (their LayerNorms do not depend on the mode).
- Every input and output gets a dynamic first axis ("batch"), so the server can tile rows for Monte Carlo.
The exported file is checked to contain one Dropout node per dropout that was live.
"""
import argparse
import copy
import os
import sys

import torch

DROPOUT_TYPES = (torch.nn.Dropout, torch.nn.AlphaDropout, torch.nn.FeatureAlphaDropout)
FEATURE_DROPOUT_TYPES = tuple(
    t for t in (getattr(torch.nn, n, None) for n in ("Dropout1d", "Dropout2d", "Dropout3d")) if t is not None
)
ATTENTION_TYPES = (
    torch.nn.MultiheadAttention,
    torch.nn.TransformerEncoderLayer,
    torch.nn.TransformerDecoderLayer,
    torch.nn.TransformerEncoder,
    torch.nn.TransformerDecoder,
)


class FeatureDropout(torch.nn.Module):
    """nn.Dropout2d's distribution, exportable: one Bernoulli draw per (row, channel), scaled by 1 / (1 - p)."""

    def __init__(self, p):
        super().__init__()
        self.p = float(p)

    def forward(self, x):
        if not self.training or self.p == 0:
            return x
        shape = (x.shape[0], x.shape[1]) + (1,) * (x.dim() - 2)
        return x * torch.nn.functional.dropout(torch.ones(shape, dtype=x.dtype), self.p, True)


def replace_feature_dropout(model):
    """Swap every Dropout1d/2d/3d for FeatureDropout (same p); returns how many were swapped."""
    count = 0
    for name, child in list(model.named_children()):
        if isinstance(child, FEATURE_DROPOUT_TYPES):
            setattr(model, name, FeatureDropout(child.p))
            count += 1
        else:
            count += replace_feature_dropout(child)
    return count


def mc_mode(model):
    """Eval mode everywhere, train mode for the modules whose randomness is MC dropout. Returns the number of
    live dropouts (modules with p > 0, counting a MultiheadAttention's attention dropout)."""
    model.eval()
    live = 0
    for module in model.modules():
        dropout = isinstance(module, DROPOUT_TYPES + FEATURE_DROPOUT_TYPES + (FeatureDropout,))
        if dropout or isinstance(module, ATTENTION_TYPES):
            module.train()
        if dropout and module.p > 0:
            live += 1
        if isinstance(module, torch.nn.MultiheadAttention) and module.dropout > 0:
            live += 1
    return live


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def export(model, example_inputs, path, input_names, output_names, opset=14):
    """Export `model` (a torch.nn.Module; modified: feature dropouts replaced, modes set) to `path`.

    example_inputs: a tuple of tensors (their batch size does not matter: axis 0 is dynamic).
    Returns {"dropouts": live dropout modules, "dropout_nodes": Dropout nodes in the file}."""
    import onnx

    replace_feature_dropout(model)
    live = mc_mode(model)
    before = _state(model)
    dynamic = {n: {0: "batch"} for n in list(input_names) + list(output_names)}
    torch.onnx.export(
        model, tuple(example_inputs), path, opset_version=opset,
        training=torch.onnx.TrainingMode.PRESERVE, do_constant_folding=False,
        input_names=list(input_names), output_names=list(output_names), dynamic_axes=dynamic,
    )
    after = _state(model)
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    if changed:
        raise RuntimeError(f"the export changed the model's state: {changed[:5]}")
    nodes = sum(1 for n in onnx.load(path).graph.node if n.op_type == "Dropout")
    if nodes < live:
        raise RuntimeError(f"{live} live dropouts in the model but {nodes} Dropout nodes in {path}")
    return {"dropouts": live, "dropout_nodes": nodes}


DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
          "int64": torch.int64, "int32": torch.int32, "bool": torch.bool, "uint8": torch.uint8}


def parse_input(spec):
    """"name:1,3,96,96[:dtype]" → (name, example tensor)."""
    parts = spec.split(":")
    shape = [int(d) for d in parts[1].split(",")]
    dtype = DTYPES[parts[2] if len(parts) > 2 else "float32"]
    tensor = torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.zeros(shape, dtype=dtype)
    return parts[0], tensor


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a module saved with torch.save(model, path)")
    ap.add_argument("onnx", help="the ONNX file to write")
    ap.add_argument("--input", action="append", required=True, help="name:dims[:dtype], once per input")
    ap.add_argument("--output", action="append", help="output name(s); default: output")
    ap.add_argument("--opset", type=int, default=14)
    args = ap.parse_args(argv)
    model = torch.load(args.model, weights_only=False) if "weights_only" in torch.load.__code__.co_varnames else torch.load(args.model)
    inputs = [parse_input(s) for s in args.input]
    result = export(copy.deepcopy(model), [t for _, t in inputs], args.onnx, [n for n, _ in inputs],
                    args.output or ["output"], args.opset)
    print(f"wrote {args.onnx}: {result['dropout_nodes']} Dropout nodes for {result['dropouts']} live dropouts",
          file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
