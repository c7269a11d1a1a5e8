"""ROAD's noisy linear imputation (Rong et al. 2022) for a whole batch, on the device.

The published imputer fills the removed pixels of one image by a sparse solve on the host. Its
system, for every removed pixel i and each channel separately::

    s_i * v_i - sum_{j in N(i), j removed} w_ij v_j = sum_{j in N(i), j kept} w_ij x_j

N(i): the 8 neighbours of i inside the image; w = 1/6 for the 4 edge neighbours and 1/12 for the
4 corner neighbours; s_i = sum_{j in N(i)} w_ij (1 inside, less at the border: the published code
subtracts the weights of the neighbours that fall outside). So each removed pixel is the weighted
mean of its in-image neighbours; kept pixels stay fixed. Noise ``noise * N(0, 1)`` is added to the
removed pixels after the solve, as published.

Here the system of every image and channel is solved at once with the Jacobi-preconditioned
conjugate gradient method (the matrix is symmetric, weakly diagonally dominant and, unless every
pixel is removed, positive definite). Applying the matrix is one 3x3 depthwise convolution over
the batch, so an iteration costs a few passes over ``[N, C, H, W]``. CG needs about
sqrt(condition) iterations; the condition grows with the square of the widest hole (a hole of
d pixels: ~d^2), so a 32 px image converges in ~30-60 iterations and a 224 px image with most
pixels removed in a few hundred. It stops when every system's residual is below ``tol`` times its
right-hand side (checked every ``check_every`` iterations: the one host sync) or after
``max_iter`` iterations. An image with every pixel removed has no kept pixel to interpolate: its
removed pixels become 0 (plus the noise), the normalised mean.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from errors import ConfigError

EDGE, CORNER = 1.0 / 6.0, 1.0 / 12.0


def neighbour_kernel(device: torch.device | str, dtype: torch.dtype) -> Tensor:
    """The 3x3 neighbour weights [1, 1, 3, 3] of the published imputer (centre 0)."""
    k = torch.tensor([[CORNER, EDGE, CORNER], [EDGE, 0.0, EDGE], [CORNER, EDGE, CORNER]],
                     dtype=dtype, device=device)
    return k.view(1, 1, 3, 3)


def _neighbour_sum(u: Tensor, kernel: Tensor) -> Tensor:
    """sum_j w_ij u_j over in-image neighbours for u [N, C, H, W] (zero padding = outside)."""
    n, c, h, w = u.shape
    return F.conv2d(u.reshape(n * c, 1, h, w), kernel, padding=1).reshape(n, c, h, w)


def road_impute(
    x: Tensor,
    removed: Tensor,
    noise: float = 0.0,
    generator: torch.Generator | None = None,
    eps: Tensor | None = None,
    tol: float = 1e-6,
    max_iter: int = 2000,
    check_every: int = 10,
) -> Tensor:
    """x [N, C, H, W] with the pixels of ``removed`` [N, H, W] bool linearly imputed.

    Kept pixels are returned unchanged. ``noise``: the std of the Gaussian noise added to the
    imputed pixels (the published default is 0.01; 0 gives the plain solution). The standard
    normal draws: ``eps`` [N, C, H, W] where given (the curves key them by sample, so that every
    process draws the same), else from ``generator``, a CPU generator (drawn on the CPU, then
    moved: the same numbers on any device).
    Computed in float32 (float64 inputs stay float64). Returns [N, C, H, W].
    """
    if x.dim() != 4 or removed.shape != (x.shape[0], *x.shape[-2:]):
        raise ConfigError(f"road_impute: x [N, C, H, W] and removed [N, H, W], got "
                          f"{tuple(x.shape)} and {tuple(removed.shape)}")
    if noise < 0:
        raise ConfigError(f"road noise={noise}: use a standard deviation >= 0")
    if eps is not None and eps.shape != x.shape:
        raise ConfigError(f"road_impute: eps {tuple(eps.shape)} must be shaped as x "
                          f"{tuple(x.shape)}")
    dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
    with torch.autocast(x.device.type, enabled=False):  # a baseline image, not model work
        xf = x.to(dtype)
        kernel = neighbour_kernel(x.device, dtype)
        miss = removed[:, None].to(dtype)  # [N, 1, H, W]
        keep = 1.0 - miss
        ones = torch.ones_like(miss[:1])
        s = F.conv2d(ones, kernel, padding=1)  # [1, 1, H, W]: in-image neighbour weight
        b = _neighbour_sum(xf * keep, kernel) * miss  # kept neighbours' pull, on removed pixels

        def apply(u: Tensor) -> Tensor:  # the system matrix on removed pixels (u is 0 elsewhere)
            return (s * u - _neighbour_sum(u, kernel)) * miss

        v = torch.zeros_like(b)
        r = b.clone()
        z = r / s
        p = z.clone()
        rz = (r * z).sum(dim=(-2, -1), keepdim=True)
        b_norm = b.flatten(-2).norm(dim=-1)[..., None, None]
        limit = (tol * b_norm).square()
        tiny = torch.finfo(dtype).tiny
        for it in range(max_iter):
            q = apply(p)
            pq = (p * q).sum(dim=(-2, -1), keepdim=True)
            alpha = rz / pq.clamp_min(tiny)
            v = v + alpha * p
            r = r - alpha * q
            # the one host sync, every check_every iterations: stop once every system converged
            if (it + 1) % check_every == 0 and bool(
                    (r.square().sum(dim=(-2, -1), keepdim=True) <= limit).all()):
                break
            z = r / s
            rz_new = (r * z).sum(dim=(-2, -1), keepdim=True)
            beta = rz_new / rz.clamp_min(tiny)
            rz = rz_new
            p = z + beta * p
        if noise > 0:
            if eps is None:
                eps = torch.randn(x.shape, generator=generator, dtype=dtype).to(x.device)
            v = v + noise * eps.to(dtype) * miss
        return torch.where(removed[:, None], v, xf).to(x.dtype)
