"""The per-batch hot paths make no host-device sync beyond the documented ones.

On a CPU nothing waits, so the test counts the Python-level calls that would sync on a GPU:
``bool(t)``, ``t.item()``, ``t.tolist()``, ``float(t)`` / ``int(t)`` / ``t.__index__()``,
``nonzero`` and indexing with a boolean mask. The CUDA test at the end checks the same with
``torch.cuda.set_sync_debug_mode`` (skips without CUDA).
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import torch
from torch import Tensor, nn

from explainers import explain
from metrics import GradientSignPerturbation, PerturbationScore

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


@contextmanager
def count_syncs(monkeypatch: pytest.MonkeyPatch) -> Iterator[Counter]:
    counts: Counter = Counter()

    def wrap(name: str, real: object, check: object = None) -> object:
        def fn(*args: object, **kwargs: object) -> object:
            if check is None or check(*args):
                counts[name] += 1
            return real(*args, **kwargs)
        return fn

    def bool_index(_self: Tensor, index: object) -> bool:
        items = index if isinstance(index, tuple) else (index,)
        return any(isinstance(i, Tensor) and i.dtype == torch.bool for i in items)

    with monkeypatch.context() as m:
        for name in ("__bool__", "item", "tolist", "__float__", "__int__", "__index__",
                     "nonzero"):
            m.setattr(Tensor, name, wrap(name, getattr(Tensor, name)))
        m.setattr(torch, "nonzero", wrap("nonzero", torch.nonzero))
        m.setattr(Tensor, "__getitem__", wrap("bool mask", Tensor.__getitem__, bool_index))
        yield counts


def test_explain_and_metric_updates_are_sync_free(
    tiny_vgg: nn.Module, images: Tensor, monkeypatch: pytest.MonkeyPatch
) -> None:
    ps_all = PerturbationScore("gradcam", threshold=None, max_batch=64)
    gsp = GradientSignPerturbation(MEAN, STD, steps=(1, 3))
    labels = torch.tensor([1, 2, 3, 4])
    gsp.update(tiny_vgg, images, labels)  # measures the chunk cost once (cached afterwards)
    with count_syncs(monkeypatch) as syncs:
        res = explain(tiny_vgg, images, method="gradcam", layer="features.12", topk=2,
                      contrasts=("original", "weighted"))
    assert syncs == Counter()
    p2 = res.probs.gather(1, res.targets[:, 1:])[:, 0]
    # keeps 2
    ps_sel = PerturbationScore("gradcam", threshold=float(p2.sort().values[1]), max_batch=64)
    with count_syncs(monkeypatch) as syncs:
        ps_all.update(tiny_vgg, images, res.maps, res.targets, res.logits)
    assert syncs == Counter()
    with count_syncs(monkeypatch) as syncs:
        ps_sel.update(tiny_vgg, images, res.maps, res.targets, res.logits)
    assert syncs == Counter({"nonzero": 1})  # which samples pass p_t2 > threshold: one sync
    with count_syncs(monkeypatch) as syncs:
        gsp.update(tiny_vgg, images, labels)
    assert syncs == Counter({"__bool__": 1})  # the labels' range, checked once per update
    assert float(ps_sel.count) == 2 and float(ps_all.count) == 4


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_hot_paths_sync_only_where_documented(tiny_vgg: nn.Module, images: Tensor) -> None:
    model, x = tiny_vgg.cuda(), images.cuda()
    labels = torch.tensor([1, 2, 3, 4], device="cuda")
    ps = PerturbationScore("gradcam", threshold=None, max_batch=64).cuda()
    gsp = GradientSignPerturbation(MEAN, STD, steps=(1, 3)).cuda()
    gsp.update(model, x, labels)  # measures the chunk cost once
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            res = explain(model, x, method="gradcam", layer="features.12", topk=2,
                          contrasts=("original", "weighted"))
            ps.update(model, x, res.maps, res.targets, res.logits)
            after_masking = len(caught)
            gsp.update(model, x, labels)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    syncs = [str(w.message) for w in caught if "synchroniz" in str(w.message)]
    assert after_masking == 0, syncs
    assert len(syncs) <= 1, syncs  # the labels' range check
