"""ROAD's noisy linear imputation on the device against a direct sparse solve of the published
system on the CPU (scipy), written plainly from the published imputer's definition."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse
import scipy.sparse.linalg
import torch

from errors import ConfigError
from metrics.functional.road import road_impute

OFFSETS = [((dy, dx), 1 / 12 if dy and dx else 1 / 6)
           for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def _reference(img: np.ndarray, removed: np.ndarray) -> np.ndarray:
    """One image [C, H, W] float64: each removed pixel the weighted mean of its in-image
    neighbours (kept ones fixed), one spsolve per channel."""
    c, h, w = img.shape
    idx = -np.ones((h, w), dtype=int)
    cells = list(zip(*np.nonzero(removed), strict=True))
    for n, (i, j) in enumerate(cells):
        idx[i, j] = n
    a = scipy.sparse.lil_matrix((len(cells), len(cells)))
    rhs = np.zeros((len(cells), c))
    for n, (i, j) in enumerate(cells):
        total = 0.0
        for (dy, dx), wt in OFFSETS:
            y, x = i + dy, j + dx
            if not (0 <= y < h and 0 <= x < w):
                continue
            total += wt
            if removed[y, x]:
                a[n, idx[y, x]] = -wt
            else:
                rhs[n] += wt * img[:, y, x]
        a[n, n] = total
    sol = scipy.sparse.linalg.spsolve(scipy.sparse.csc_matrix(a), rhs)
    out = img.copy()
    out[:, removed] = np.asarray(sol).reshape(len(cells), c).T
    return out


def _masks(n: int, h: int, w: int, g: torch.Generator) -> torch.Tensor:
    """Random scatter, a big square hole, a hole touching two borders, all but one pixel."""
    scatter = torch.rand(n, h, w, generator=g) < 0.5
    hole = torch.zeros(n, h, w, dtype=torch.bool)
    hole[:, 3:h - 4, 5:w - 2] = True
    corner = torch.zeros(n, h, w, dtype=torch.bool)
    corner[:, : h * 3 // 4, w // 3:] = True
    almost = torch.ones(n, h, w, dtype=torch.bool)
    almost[:, h // 2, w // 2] = False
    return torch.cat([scatter, hole, corner, almost])


@pytest.mark.parametrize("size", [(16, 16), (12, 20)])
def test_road_matches_direct_sparse_solve(size: tuple[int, int]) -> None:
    g = torch.Generator().manual_seed(3)
    removed = _masks(2, *size, g)
    x = torch.randn(removed.shape[0], 3, *size, generator=g)
    got = road_impute(x, removed)
    for i in range(x.shape[0]):
        want = _reference(x[i].double().numpy(), removed[i].numpy())
        np.testing.assert_allclose(got[i].numpy(), want, atol=1e-3)
    assert torch.equal(got[~removed[:, None].expand_as(x)], x[~removed[:, None].expand_as(x)])


def test_road_noise_edges_and_errors() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, 8, 8, generator=g)
    removed = torch.zeros(2, 8, 8, dtype=torch.bool)
    removed[0, 2:5, 2:5] = True
    removed[1] = True  # nothing kept: the normalised mean 0
    plain = road_impute(x, removed)
    assert torch.equal(plain[1], torch.zeros(3, 8, 8))
    # a constant image is imputed by the constant
    const = road_impute(torch.full((1, 3, 8, 8), 0.7), removed[:1])
    torch.testing.assert_close(const, torch.full((1, 3, 8, 8), 0.7))
    noisy = road_impute(x, removed, noise=0.5, generator=torch.Generator().manual_seed(1))
    diff = (noisy - plain)[removed[:, None].expand_as(x)]
    assert 0.3 < float(diff.std()) < 0.7
    assert torch.equal(noisy[~removed[:, None].expand_as(x)], x[~removed[:, None].expand_as(x)])
    with pytest.raises(ConfigError, match="noise"):
        road_impute(x, removed, noise=-1.0)
    with pytest.raises(ConfigError, match="removed"):
        road_impute(x, removed[:, :4])
