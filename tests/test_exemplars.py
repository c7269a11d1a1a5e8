"""ExemplarBuffer against a plain per-sample reference, and the exemplar figure."""

from __future__ import annotations

import io

import pytest
import torch
from PIL import Image

from callbacks.exemplars import ExemplarBuffer
from results.figures import (
    CELL_INCH,
    DPI,
    differ_line,
    exemplar_caption,
    exemplar_figure_png,
    pick_exemplars,
)

MEAN, STD = (0.5, 0.4, 0.3), (0.2, 0.25, 0.3)
C = 4


def _batches(n_batches: int = 3, b: int = 5, seed: int = 0) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        logits = torch.randn(b, C, generator=g) * 2
        probs = logits.softmax(1)
        targets = probs.topk(2, 1).indices
        labels = torch.where(torch.rand(b, generator=g) < 0.6, targets[:, 0],
                             torch.randint(0, C, (b,), generator=g))
        maps = {c: torch.randn(b, 2, 3, 3, generator=g) for c in ("original", "weighted")}
        out.append({"x": torch.randn(b, 3, 16, 16, generator=g), "labels": labels,
                    "targets": targets, "probs": probs, "maps": {"gradcam": maps}})
    return out


def _fill(batches: list[dict], num_figures: int, threshold: float | None) -> ExemplarBuffer:
    buf = ExemplarBuffer(num_figures, threshold, MEAN, STD, per_class=2)
    for bt in batches:
        buf.update(bt["x"], bt["labels"], bt["targets"], bt["probs"], bt["maps"])
    return buf


def _pixels(x: torch.Tensor) -> torch.Tensor:
    m, s = torch.tensor(MEAN).view(3, 1, 1), torch.tensor(STD).view(3, 1, 1)
    return ((x * s + m).clamp(0, 1) * 255).round().to(torch.uint8)


def test_first_qualifying_samples_in_loader_order() -> None:
    batches = _batches()
    data = _fill(batches, num_figures=4, threshold=0.2).collected()
    flat = [(i, bt, j) for i, bt in enumerate(batches) for j in range(5)]
    ref = [(k, bt, j) for k, (_, bt, j) in enumerate(flat)
           if bt["probs"][j, bt["targets"][j, 1]] > 0.2][:4]
    assert data is not None and data.images.shape[0] == len(ref) == 4
    for q, (k, bt, j) in enumerate(ref):
        assert int(data.index[q]) == k
        assert torch.equal(data.images[q], _pixels(bt["x"][j]))
        assert torch.equal(data.targets[q], bt["targets"][j])
        assert int(data.labels[q]) == int(bt["labels"][j])
        torch.testing.assert_close(data.probs[q], bt["probs"][j, bt["targets"][j]])
        for ci, c in enumerate(("original", "weighted")):
            torch.testing.assert_close(data.maps["gradcam"][q, ci], bt["maps"]["gradcam"][c][j])


def test_per_class_buffer_keeps_the_first_correct_samples() -> None:
    batches = _batches(n_batches=4, b=6, seed=1)
    data = _fill(batches, num_figures=2, threshold=None).collected()
    seen: dict[int, list[tuple[int, dict, int]]] = {c: [] for c in range(C)}
    k = 0
    for bt in batches:
        for j in range(6):
            y = int(bt["labels"][j])
            if int(bt["targets"][j, 0]) == y and len(seen[y]) < 2:
                seen[y].append((k, bt, j))
            k += 1
    assert sum(len(v) for v in seen.values()) >= 5  # the data exercise the buffer
    for c in range(C):
        for s in range(2):
            if s >= len(seen[c]):
                assert int(data.ex_index[c, s]) == -1
                continue
            k, bt, j = seen[c][s]
            assert int(data.ex_index[c, s]) == k
            assert torch.equal(data.ex_images[c, s], _pixels(bt["x"][j]))
            torch.testing.assert_close(data.ex_maps["gradcam"][c, s],
                                       bt["maps"]["gradcam"]["weighted"][j, 0])
            torch.testing.assert_close(data.ex_probs[c, s], bt["probs"][j, c])


def test_pick_exemplars_skips_the_sample_itself() -> None:
    ex_index = torch.tensor([[3, 7, 9], [5, -1, -1]])
    assert pick_exemplars(ex_index, 0, exclude=7) == [0, 2]
    assert pick_exemplars(ex_index, 0, exclude=100) == [0, 1]
    assert pick_exemplars(ex_index, 1, exclude=5) == []


def test_large_and_input_space_maps_are_pooled() -> None:
    buf = ExemplarBuffer(2, None, MEAN, STD, image_size=8)
    x = torch.zeros(2, 3, 16, 16)
    maps = {"gradient": {"weighted": torch.ones(2, 2, 3, 16, 16),
                         "original": torch.ones(2, 2, 3, 16, 16)}}
    buf.update(x, torch.tensor([0, 1]), torch.tensor([[0, 1], [1, 0]]),
               torch.tensor([[0.6, 0.4], [0.3, 0.7]]), maps)
    data = buf.collected()
    assert data.images.shape == (2, 3, 8, 8)
    assert data.maps["gradient"].shape == (2, 2, 2, 8, 8)
    torch.testing.assert_close(data.ex_maps["gradient"][0, 0], torch.full((8, 8), 3.0))


def test_figure_layout_and_captions() -> None:
    data = _fill(_batches(), num_figures=3, threshold=None).collected()
    png = exemplar_figure_png(data, "gradcam", ["a", "b", "c", "d"], caption="x", title="t")
    img = Image.open(io.BytesIO(png))
    # image + 2 targets x 2 cells, colour bar; 2 rows per sample, title and caption
    assert img.size == (round((5 * CELL_INCH + 0.9) * DPI), round((6 * CELL_INCH + 0.9) * DPI))
    none = _fill(_batches(), num_figures=3, threshold=0.99).collected()
    assert none.images.shape[0] == 0
    assert Image.open(io.BytesIO(exemplar_figure_png(none, "gradcam"))).size[0] > 0
    assert "rank 0" in exemplar_caption(8, 0.1, world_size=2)
    assert "rank 0" not in exemplar_caption(8, 0.1, world_size=1)
    assert "p_t2 > 0.1" in exemplar_caption(8, 0.1, world_size=1)


def test_differ_line_names_the_parts() -> None:
    attrs = torch.tensor([[0, 0, 0], [0, 1, 1], [0, 0, 0]])
    assert differ_line(0, 1, ["body", "head", "wing"], attrs) == "differ in: head, wing"
    assert differ_line(0, 2, ["body", "head", "wing"], attrs) == "differ in: no annotated part"
    assert differ_line(0, 1, ["bird"], torch.arange(3)[:, None]) == ""


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_per_batch_updates_never_sync_the_host() -> None:
    from metrics import PartLocalization

    def to_cuda(bt: dict) -> dict:
        return {k: ({m: {c: t.cuda() for c, t in v.items()} for m, v in bt["maps"].items()}
                    if k == "maps" else bt[k].cuda()) for k, v in bt.items()}

    batches = [to_cuda(bt) for bt in _batches()]
    buf = ExemplarBuffer(2, 0.1, MEAN, STD)
    first = batches[0]
    buf.update(first["x"], first["labels"], first["targets"], first["probs"], first["maps"])
    metric = PartLocalization("gradcam", ).cuda()
    masks = torch.rand(5, 3, 16, 16, device="cuda") > 0.5
    attrs = torch.randint(0, 2, (C, 3), device="cuda")
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        for bt in batches[1:]:
            buf.update(bt["x"], bt["labels"], bt["targets"], bt["probs"], bt["maps"])
            metric.update(bt["maps"]["gradcam"], bt["targets"], bt["probs"].log(), masks, attrs)
    finally:
        torch.cuda.set_sync_debug_mode(0)
    assert buf.collected() is not None
