"""Throughput of the evaluation protocol and its efficiency against plain forward passes.

Protocol = what ContrastiveEvaluation does per test batch for the masking/blurring experiment:
one ``explain`` call per method (gradcam, linear_approx; top-2; original + weighted) and a
``PerturbationScore.update`` (3 baselines x pos/neg x 2 maskings x 2 contrasts x t1/t2 = 48
perturbed images per sample and method). Efficiency = time of plain ``no_grad`` forward passes over
the same number of perturbed images (batches of ``max_batch``) / time of the whole protocol.
Goal: >= 0.85. Real setting: VGG-16-BN, random weights, 224 px; quick: tiny_vgg, 64 px.

``python -m benchmarks.evaluate_speed [--quick]``
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

METHODS = ("gradcam", "linear_approx")


def _count_forward_images(model: nn.Module) -> tuple[list[int], torch.utils.hooks.RemovableHandle]:
    seen = [0]

    def hook(_m: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
        seen[0] += args[0].shape[0]

    return seen, model.register_forward_pre_hook(hook)


def run(quick: bool = False) -> dict[str, float]:
    """Measure protocol and plain-forward time on the same number of perturbed images."""
    from explainers import explain
    from lightning_modules.backbones import BACKBONES
    from metrics import PerturbationScore

    torch.manual_seed(0)
    name, size, n_images, batch, max_batch = (
        ("tiny_vgg", 64, 16, 8, 256) if quick else ("vgg16_bn", 224, 8, 4, 64)
    )
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    spec = BACKBONES[name]
    model = spec.builder().eval().to(device)
    x_all = torch.randn(n_images, 3, size, size, device=device)
    metric = PerturbationScore(threshold=None, max_batch=max_batch).to(device)

    def sync() -> None:
        if device.type == "cuda":  # CUDA kernels are asynchronous: time finished work only
            torch.cuda.synchronize(device)

    def protocol() -> int:
        seen, handle = _count_forward_images(model)
        try:
            for x in x_all.split(batch):
                for method in METHODS:
                    res = explain(model, x, method=method, layer=spec.explain_layer, topk=2,
                                  contrasts=("original", "weighted"))
                    before = seen[0]
                    metric.update(model, x, res.maps, res.targets, res.logits)
                    perturbed[0] += seen[0] - before
        finally:
            handle.remove()
        return perturbed[0]

    perturbed = [0]
    with torch.no_grad():
        model(x_all[:batch])  # warm-up: allocator and kernels
    # The first backward and the first perturbation pay one-off set-up (kernels, blur weights).
    warm = explain(model, x_all[:2], method=METHODS[0], layer=spec.explain_layer, topk=2,
                   contrasts=("original", "weighted"))
    PerturbationScore(threshold=None, max_batch=max_batch).to(device).update(
        model, x_all[:2], warm.maps, warm.targets, warm.logits)
    sync()
    start = time.perf_counter()
    n_perturbed = protocol()
    sync()
    protocol_s = time.perf_counter() - start

    plain = torch.randn(min(max_batch, n_perturbed), 3, size, size, device=device)
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        left = n_perturbed
        while left > 0:
            model(plain[: min(left, plain.shape[0])])
            left -= plain.shape[0]
    sync()
    forward_s = time.perf_counter() - start
    return {
        "images_per_s": n_images / protocol_s,
        "efficiency": forward_s / protocol_s,
        "protocol_s": protocol_s,
        "forward_s": forward_s,
        "n_perturbed": float(n_perturbed),
        "n_images": float(n_images),
    }


def main() -> None:
    """Print the measurement."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny_vgg at 64 px (seconds)")
    result = run(quick=parser.parse_args().quick)
    for key, value in result.items():
        print(f"{key:>14}: {value:.4g}")
    print(f"efficiency {result['efficiency']:.3f} (goal >= 0.85)")


if __name__ == "__main__":
    main()
