#!/usr/bin/env python3
"""Export a PyTorch model to ONNX for dropout-serve: every dropout a live Dropout op, BatchNorm untouched.

Use it as a library (the function `export`) or from the command line on a module saved with torch.save:

    python3 scripts/export_torch.py model.pt model.onnx --input input:1,3,96,96
    python3 scripts/export_torch.py model.pt model.onnx --input input_ids:1,16:int64 \
        --input attention_mask:1,16:int64 --output logits --sample-input rows.pt

It avoids the traps of exporting a model "in train mode" (torch 1.13 to 2.x, the TorchScript exporter):
- `torch.onnx.export(model.train(), training=TrainingMode.TRAINING)` runs the model once in training mode, so
  BatchNorm's running statistics change in the file (measured: up to 0.29 in mobilenet_v3_small's eval logits).
  Here the model is put in eval mode and only the modules whose randomness is MC dropout go to train mode
  (Dropout, AlphaDropout, MultiheadAttention, the Transformer layers), and the export uses
  TrainingMode.PRESERVE: each module is exported in the mode it is in. The state dict is compared before and
  after: the export fails if any parameter or buffer changed.
- `nn.Dropout2d` / `Dropout3d` / `Dropout1d` (feature dropout) cannot be exported in training mode by torch 1.13
  (`aten::feature_dropout`): they are replaced by `x * dropout(ones[N, C, 1, ...])`, which has the same
  distribution and exports as a Dropout op on the mask.
- `TransformerEncoderLayer` (and `TransformerEncoder`) in eval mode take a fast path that applies no dropout at
  all: they are put in train mode (their LayerNorms do not depend on the mode), with a warning, since PyTorch
  Monte Carlo references computed with `model.eval()` plus dropout in train mode would have no spread.
- Every input and output gets a dynamic first axis ("batch"), so the server can tile rows for Monte Carlo.
The exported file is checked to hold one Dropout node per dropout module (fewer: an error; more: a warning, a
module called twice), and records what was done in its metadata (`dropout_serve.export`, JSON). With
`sample_input`, a few real rows are written beside the model as NAME.sample_input.bin, which the server's load
self-check runs on instead of synthetic rows.
"""
import argparse
import copy
import json
import os
import sys
import warnings

import torch

METADATA_KEY = "dropout_serve.export"
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
FAST_PATH_TYPES = (torch.nn.TransformerEncoderLayer, torch.nn.TransformerEncoder)


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


def expected_dropout_nodes(model):
    """The Dropout nodes a PRESERVE export of `model` (after replace_feature_dropout) gives when each module runs
    once: one per Dropout module (torch exports p = 0 too), one per FeatureDropout with p > 0 (p = 0 returns x),
    one per MultiheadAttention with attention dropout (torch skips it at p = 0)."""
    count = 0
    for module in model.modules():
        if isinstance(module, DROPOUT_TYPES):
            count += 1
        elif isinstance(module, FeatureDropout) and module.p > 0:
            count += 1
        elif isinstance(module, torch.nn.MultiheadAttention) and module.dropout > 0:
            count += 1
    return count


def warn_fast_path(model):
    """Warn once when the model has Transformer encoder layers: their eval fast path applies no dropout."""
    if any(isinstance(m, FAST_PATH_TYPES) for m in model.modules()):
        warnings.warn(
            "TransformerEncoderLayer in eval mode takes a fast path that applies no dropout at all: it is exported "
            "in train mode here; compute PyTorch Monte Carlo references with export_torch.mc_mode(model), not "
            "model.eval() plus dropout.train()",
            stacklevel=3,
        )


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _count_dropout_nodes(onnx_model):
    return sum(1 for n in onnx_model.graph.node if n.op_type == "Dropout")


def _check_nodes(nodes, expected, path):
    if nodes < expected:
        raise RuntimeError(f"{expected} dropout modules in the model but {nodes} Dropout nodes in {path}")
    if nodes > expected:
        warnings.warn(f"{nodes} Dropout nodes in {path} for {expected} dropout modules (a module called twice?)")


def export(model, example_inputs, path, input_names, output_names, opset=14, sample_input=None):
    """Export `model` (a torch.nn.Module; modified: feature dropouts replaced, modes set) to `path`.

    example_inputs: a tuple of tensors, one per input name (their batch size does not matter: axis 0 is dynamic).
    sample_input: optional tensors, one per input, a few real rows each (the same count): written beside the
    model as NAME.sample_input.bin (write_sample_input) for the server's load self-check.
    Returns {"dropouts": live dropout modules, "dropout_nodes": Dropout nodes in the file, "feature_dropouts":
    Dropout1d/2d/3d rewritten, "sample_input": the file written or None}."""
    import onnx

    if sample_input is not None:
        check_sample_input(sample_input, example_inputs)  # before writing anything
    feature = replace_feature_dropout(model)
    live = mc_mode(model)
    warn_fast_path(model)
    expected = expected_dropout_nodes(model)
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
    exported = onnx.load(path)
    nodes = _count_dropout_nodes(exported)
    _check_nodes(nodes, expected, path)
    sample = write_sample_input(path, sample_input, example_inputs) if sample_input is not None else None
    record = {"tool": "scripts/export_torch.py", "torch": torch.__version__, "opset": opset,
              "training": "PRESERVE", "state_unchanged": True, "dynamic_batch": True,
              "dropout_modules": expected, "dropout_nodes": nodes, "feature_dropouts": feature}
    onnx.helper.set_model_props(exported, {METADATA_KEY: json.dumps(record, sort_keys=True)})
    onnx.save(exported, path)
    return {"dropouts": live, "dropout_nodes": nodes, "feature_dropouts": feature, "sample_input": sample}


def sample_input_path(model_path):
    """Where the server looks for a model's sample rows: NAME.sample_input.bin beside NAME.onnx."""
    stem = model_path[: -len(".onnx")] if model_path.endswith(".onnx") else model_path
    return f"{stem}.sample_input.bin"


def write_sample_input(model_path, tensors, example_inputs):
    """Write NAME.sample_input.bin: each input's rows in order, C order, little-endian, in the input's own datatype
    (one float32 input: rows × values per row, the tabular format). Each tensor must match its example input's
    datatype and non-batch dims, and all must have the same rows."""
    tensors = check_sample_input(tensors, example_inputs)
    out = sample_input_path(model_path)
    with open(out, "wb") as f:
        for t in tensors:
            array = t.detach().contiguous().numpy()
            f.write(array.astype(array.dtype.newbyteorder("<")).tobytes())
    return out


def check_sample_input(tensors, example_inputs):
    """The sample tensors as a list, checked against the example inputs (ValueError naming the input)."""
    tensors = list(tensors)
    if len(tensors) != len(example_inputs):
        raise ValueError(f"sample_input: {len(tensors)} tensors for {len(example_inputs)} inputs")
    rows = {t.shape[0] for t in tensors}
    if len(rows) != 1:
        raise ValueError(f"sample_input: the inputs have different row counts {sorted(rows)}")
    for i, (t, ex) in enumerate(zip(tensors, example_inputs)):
        if t.dtype != ex.dtype or tuple(t.shape[1:]) != tuple(ex.shape[1:]):
            raise ValueError(f"sample_input {i}: {t.dtype} {list(t.shape)} does not match {ex.dtype} [N, "
                             f"{', '.join(str(d) for d in ex.shape[1:])}]")
    return tensors


DTYPES = {"float32": torch.float32, "float16": torch.float16, "float64": torch.float64,
          "int64": torch.int64, "int32": torch.int32, "bool": torch.bool, "uint8": torch.uint8}


def parse_input(spec):
    """"name:1,3,96,96[:dtype]" → (name, example tensor)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or parts[2:3] and parts[2] not in DTYPES:
        raise SystemExit(f"--input {spec}: expected name:dims[:dtype], dtype one of {', '.join(DTYPES)}")
    shape = [int(d) for d in parts[1].split(",")]
    dtype = DTYPES[parts[2] if len(parts) > 2 else "float32"]
    # integer inputs are ids or masks: ones are a valid token (0 is often padding) and an all-true mask
    tensor = torch.randn(shape).to(dtype) if dtype.is_floating_point else torch.ones(shape, dtype=dtype)
    return parts[0], tensor


def _load(path):
    """torch.load of a whole module or tensors (torch ≥ 2.6 defaults to weights_only=True, which refuses them)."""
    if "weights_only" in torch.load.__code__.co_varnames:
        return torch.load(path, weights_only=False)
    return torch.load(path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", help="a module saved with torch.save(model, path)")
    ap.add_argument("onnx", help="the ONNX file to write")
    ap.add_argument("--input", action="append", required=True, help="name:dims[:dtype], once per input, in order")
    ap.add_argument("--output", action="append", help="output name(s); default: output")
    ap.add_argument("--opset", type=int, default=14)
    ap.add_argument("--sample-input", help="a tensor or a tuple of tensors (one per input) saved with torch.save: "
                                           "a few real rows, written beside the model as NAME.sample_input.bin")
    args = ap.parse_args(argv)
    inputs = [parse_input(s) for s in args.input]
    sample = None
    if args.sample_input:
        loaded = _load(args.sample_input)
        sample = [loaded] if torch.is_tensor(loaded) else list(loaded)
    result = export(copy.deepcopy(_load(args.model)), [t for _, t in inputs], args.onnx, [n for n, _ in inputs],
                    args.output or ["output"], args.opset, sample)
    print(f"wrote {args.onnx}: {result['dropout_nodes']} Dropout nodes for {result['dropouts']} live dropouts"
          f" ({result['feature_dropouts']} feature dropouts rewritten)"
          + (f", {result['sample_input']}" if result["sample_input"] else ""), file=sys.stderr)


if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    main()
