"""GradCAM, top-2 targets x 4 contrasts: the engine against the usual per-target loop.

The loop is what a captum / pytorch-grad-cam user writes: one forward and one full backward per
target and per contrast, the weighted contrast as the gradient of ``p_t`` (divided by
``p_t (1 - p_t)`` here so the maps can be compared). Usage: ``python -m benchmarks.explain_speed``.
"""

from __future__ import annotations

import time

import torch
from torch import Tensor, nn
from torchvision.models import vgg16_bn

from explainers import CONTRASTS, explain
from lightning_modules.tiny_nets import TinyVGG

GOAL = 5.0


def _loop(model: nn.Module, x: Tensor, layer: str, k: int) -> dict[str, Tensor]:
    """Per-target, per-contrast GradCAM maps ``[B, k, h, w]``, one forward + backward each."""
    module = dict(model.named_modules())[layer]
    store: dict[str, Tensor] = {}

    def hook(_m: nn.Module, _i: object, out: Tensor) -> Tensor:
        out = out.clone()  # in-place ReLU follows in torchvision nets
        out.retain_grad()
        store["a"] = out
        return out

    handle = module.register_forward_hook(hook)
    maps: dict[str, list[Tensor]] = {c: [] for c in CONTRASTS}
    try:
        for j in range(k):
            for contrast in CONTRASTS:
                model.zero_grad(set_to_none=True)
                y = model(x)
                order = y.detach().topk(k + 1, dim=1).indices
                t = order[:, j : j + 1]
                y_t = y.gather(1, t)[:, 0]
                if contrast == "original":
                    out = y_t
                elif contrast == "weighted":
                    p_t = y.softmax(dim=1).gather(1, t)[:, 0]
                    out = p_t
                elif contrast == "mean":
                    out = y_t - (y.sum(dim=1) - y_t) / (y.shape[1] - 1)
                else:
                    rival = torch.where(order[:, 0:1] == t, order[:, 1:2], order[:, 0:1])
                    out = y_t - y.gather(1, rival)[:, 0]
                out.sum().backward()
                a, g = store["a"].detach(), store["a"].grad
                cam = (g.mean(dim=(2, 3), keepdim=True) * a).sum(dim=1)
                if contrast == "weighted":
                    p = p_t.detach()
                    cam = cam / (p * (1 - p))[:, None, None]
                maps[contrast].append(cam)
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    return {c: torch.stack(v, dim=1) for c, v in maps.items()}


def run(quick: bool = False, repeats: int = 1) -> dict[str, float]:
    """Time both on the CPU: seconds per batch, the speedup and the largest map difference."""
    torch.manual_seed(0)
    if quick:
        model, layer = TinyVGG(num_classes=10, width=16), "features.12"
        x = torch.randn(2, 3, 64, 64)
    else:
        model, layer = vgg16_bn(weights=None, num_classes=200), "features.40"
        x = torch.randn(8, 3, 224, 224)
    model.eval()
    k = 2
    res = explain(model, x, method="gradcam", layer=layer, topk=k)  # warm-up
    ref = _loop(model, x, layer, k)
    engine_s = loop_s = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        res = explain(model, x, method="gradcam", layer=layer, topk=k)
        engine_s = min(engine_s, time.perf_counter() - start)
        start = time.perf_counter()
        ref = _loop(model, x, layer, k)
        loop_s = min(loop_s, time.perf_counter() - start)
    diff = max(float((res.maps[c] - ref[c]).abs().max()) for c in CONTRASTS)
    scale = max(float(ref[c].abs().max()) for c in CONTRASTS)
    return {
        "engine_s": engine_s,
        "loop_s": loop_s,
        "speedup": loop_s / engine_s,
        "max_abs_diff": diff,
        "max_abs_map": scale,
    }


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny net, seconds-long")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    out = run(quick=args.quick, repeats=args.repeats)
    setting = "TinyVGG 64 px, batch 2" if args.quick else "VGG-16-BN 224 px, batch 8"
    print(f"GradCAM top-2 x 4 contrasts, {setting}, {torch.get_num_threads()} threads")
    print(f"  engine  {out['engine_s']:.3f} s   (one forward + one batched backward)")
    print(f"  loop    {out['loop_s']:.3f} s   (8 forwards + 8 backwards)")
    print(f"  speedup {out['speedup']:.1f}x   (goal >= {GOAL:.0f}x)")
    print(f"  max |engine - loop| = {out['max_abs_diff']:.2e}", end=" ")
    print(f"(largest |map| {out['max_abs_map']:.2e})")
