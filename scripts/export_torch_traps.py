#!/usr/bin/python3
"""The export traps of docs/models.md ("Exporting from PyTorch"), measured on the tensor fixtures' own models
(test/fixtures/tensor/make_tensor_fixtures.py, rebuilt with its seeds; checked against mobilenet.input.bin):

1. BatchNorm: `torch.onnx.export(model.train(), training=TrainingMode.TRAINING)` runs the model in training
   mode once, so BatchNorm's running statistics change: the largest change of mobilenet's eval logits on the
   fixture's 8 images (and their scale), against none with scripts/export_torch.py (PRESERVE).
2. nn.Dropout2d: the UNet exported in training mode, as is: torch 1.13's error.
3. TransformerEncoderLayer's eval fast path: the text classifier's Monte Carlo spread (the mean over the 8 rows
   and 3 logits of the std over 200 passes) with `model.eval()` plus the Dropout modules in train mode (the
   fast path: only the embedding dropout acts) against export_torch.mc_mode (every dropout acts).

Run: /usr/bin/python3 scripts/export_torch_traps.py   (prints JSON; about a minute on one core)
"""
import copy
import io
import json
import os
import sys
import tempfile

import numpy as np
import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.join(HERE, "..", "test", "fixtures", "tensor")
sys.path.insert(0, HERE)
sys.path.insert(0, FIXTURES)
import export_torch  # noqa: E402
import make_tensor_fixtures as fx  # noqa: E402

torch.set_num_threads(1)


def fixture_models():
    """mobilenet, the UNet and the text classifier with the fixtures' weights and inputs (main()'s order)."""
    gen = torch.Generator().manual_seed(19)
    torch.manual_seed(1)
    fx.smooth_images(gen, fx.BATCH, 1, 28, 28)  # the CNN's inputs: keeps the generator in step
    torch.manual_seed(2)
    net = torchvision.models.mobilenet_v3_small(num_classes=10)
    fx.set_bn_statistics(net, lambda: fx.smooth_images(gen, 16, 3, 96, 96))
    images = fx.smooth_images(gen, fx.BATCH, 3, 96, 96)
    fx.scale_last(net.classifier[3], 3.0, net, [images])
    stored = np.fromfile(os.path.join(FIXTURES, "mobilenet.input.bin"), dtype="<f4").reshape(images.shape)
    if not np.array_equal(stored, images.numpy()):
        raise RuntimeError("the rebuilt mobilenet inputs differ from mobilenet.input.bin")
    torch.manual_seed(3)
    unet = fx.UNet()
    fx.set_bn_statistics(unet, lambda: fx.smooth_images(gen, 16, 1, 32, 32))
    unet_x = fx.smooth_images(gen, fx.BATCH, 1, 32, 32)
    fx.scale_last(unet.head, 2.0, unet, [unet_x])
    torch.manual_seed(4)
    text = fx.TextEncoder(3, per_token=False)
    ids, mask = fx.token_inputs(gen, fx.BATCH, 16)
    fx.scale_last(text.head, 3.0, text, [ids, mask])
    return (net, images), (unet, unet_x), (text, [ids, mask])


def eval_logits(model, inputs):
    model.eval()
    with torch.no_grad():
        return model(*inputs).numpy()


def batchnorm_trap(net, images):
    before = eval_logits(net, [images])
    naive = copy.deepcopy(net).train()
    torch.onnx.export(naive, (images[:2],), io.BytesIO(), opset_version=14, training=torch.onnx.TrainingMode.TRAINING,
                      do_constant_folding=False, input_names=["input"], output_names=["logits"])
    kept = copy.deepcopy(net)
    with tempfile.TemporaryDirectory() as tmp:
        export_torch.export(kept, [images[:2]], os.path.join(tmp, "mobilenet.onnx"), ["input"], ["logits"])
    return {"logits_scale": float(np.abs(before).max()),
            "train_mode_export_max_change": float(np.abs(eval_logits(naive, [images]) - before).max()),
            "export_torch_max_change": float(np.abs(eval_logits(kept, [images]) - before).max())}


def dropout2d_trap(unet, x):
    try:
        torch.onnx.export(copy.deepcopy(unet).train(), (x[:2],), io.BytesIO(), opset_version=14,
                          training=torch.onnx.TrainingMode.TRAINING, do_constant_folding=False)
        return {"error": None}
    except Exception as err:  # noqa: BLE001 - the message is the measurement
        return {"error": str(err).strip().split("\n")[0]}


def mc_spread(model, inputs, passes=200):
    with torch.no_grad():
        samples = np.stack([model(*inputs).numpy() for _ in range(passes)])
    return float(samples.std(0, ddof=1).mean())


def fast_path_trap(text, inputs):
    fast = copy.deepcopy(text).eval()
    for m in fast.modules():
        if isinstance(m, torch.nn.Dropout):
            m.train()
    live = copy.deepcopy(text)
    export_torch.mc_mode(live)
    torch.manual_seed(0)
    return {"eval_plus_dropout_train_std": mc_spread(fast, inputs), "mc_mode_std": mc_spread(live, inputs)}


def main():
    (net, images), (unet, unet_x), (text, text_inputs) = fixture_models()
    print(json.dumps({"torch": torch.__version__, "batchnorm": batchnorm_trap(net, images),
                      "dropout2d": dropout2d_trap(unet, unet_x), "fast_path": fast_path_trap(text, text_inputs)},
                     indent=1))


if __name__ == "__main__":
    main()
