#!/usr/bin/python3
"""PyTorch timings for the tensor-model bench (issue 19), one torch thread, the fixtures' architectures
(test/fixtures/tensor/make_tensor_fixtures.py; timings do not depend on the weights).

Usage: /usr/bin/python3 bench/torch_tensor_baseline.py [repeats=5]
Prints JSON, per case, the median seconds over `repeats` of:
- mobilenet, 1 image [1, 3, 96, 96]: `eval` (model.eval() forward), `mc_loop` (100 forward passes with the dropout
  modules in train mode, one image each: how PyTorch users write MC dropout), `mc_tiled` (one batch of 100 copies);
- text_classifier, batch 8 (ids + mask), T = 100: `eval`, `mc_tiled` (one tiled batch of 800);
- unet, 1 image [1, 1, 32, 32], T = 50: `eval`, `mc_tiled` (one tiled batch of 50).
"""
import json
import os
import statistics
import sys
import time

import torch
import torchvision

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "test", "fixtures", "tensor"))
sys.path.insert(0, os.path.join(HERE, "..", "scripts"))
import export_torch  # noqa: E402
import make_tensor_fixtures as fx  # noqa: E402

torch.set_num_threads(1)
REPEATS = int(sys.argv[1]) if len(sys.argv) > 1 else 5


def median_seconds(fn):
    fn()  # warm-up
    times = []
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def tile(inputs, t):
    return [x.repeat((t,) + (1,) * (x.dim() - 1)) for x in inputs]


def case(model, inputs, samples, loop=False):
    out = {}
    with torch.no_grad():
        model.eval()
        out["eval"] = median_seconds(lambda: model(*inputs))
        export_torch.mc_mode(model)
        out["mc_tiled"] = median_seconds(lambda: model(*tile(inputs, samples)))
        if loop:
            out["mc_loop"] = median_seconds(lambda: [model(*inputs) for _ in range(samples)])
    return out


def main():
    gen = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    result = {"torch": torch.__version__, "threads": torch.get_num_threads(), "repeats": REPEATS}
    mobilenet = torchvision.models.mobilenet_v3_small(num_classes=10)
    result["mobilenet"] = case(mobilenet, [fx.smooth_images(gen, 1, 3, 96, 96)], 100, loop=True)
    text = fx.TextEncoder(3, per_token=False)
    result["text_classifier"] = case(text, list(fx.token_inputs(gen, 8, 16)), 100)
    result["unet"] = case(fx.UNet(), [fx.smooth_images(gen, 1, 1, 32, 32)], 50)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
