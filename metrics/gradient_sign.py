"""GradientSignPerturbation: the input-space experiment of the paper's Figure 3 (SPEC §3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from metrics.perturbation_score import CONTRASTS, _check

QUANTITIES = ("acc", "logit", "prob")


class GradientSignPerturbation(Metric):
    """Change of accuracy, y_t and p_t after n gradient-sign steps along a contrast's gradient.

    For each contrast of the gradient (target t = the label) and each n in ``steps`` (a separate run
    from the clean image): n times x <- x + eps/n * sign(phi_t(x)), clamped within eps of the clean
    image and to [0, 1] in pixel space (x * std + mean). Reports mean perturbed - clean top-1
    accuracy, y_t and p_t. Higher is "more faithful" for acc / prob (the paper: weighted and max
    raise p_t and accuracy, original and mean mostly raise y_t).

    Averages are per-sample sums / count, so DDP is exact (the reproduction averaged per-batch
    means).
    All (contrast, n) runs of a batch are batched: one ``explain`` call per contrast per step on the
    still-active copies, chunked by ``max_batch`` rows.
    """

    is_differentiable = False
    higher_is_better = None
    full_state_update = False

    delta_sum: Tensor
    clean_sum: Tensor
    count: Tensor

    def __init__(
        self,
        mean: Sequence[float],
        std: Sequence[float],
        steps: Sequence[int] = (1, 2, 10),
        eps: float = 3e-3,
        contrasts: Sequence[str] = ("original", "mean", "max", "weighted"),
        max_batch: int = 256,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ValueError(f"mean={mean}, std={std}: give 3 channel values each, std > 0")
        steps = tuple(int(n) for n in steps)
        if not steps or any(n < 1 for n in steps) or len(set(steps)) != len(steps):
            raise ValueError(f"steps={steps}: give distinct positive step counts, e.g. (1, 2, 10)")
        if not eps > 0:
            raise ValueError(f"eps={eps}: must be > 0 (the paper uses 3e-3)")
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: must be a positive integer")
        self.contrasts = _check("contrasts", contrasts, CONTRASTS)
        self.steps = tuple(sorted(steps))
        self.eps = float(eps)
        self.max_batch = int(max_batch)
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        shape = (len(self.contrasts), len(self.steps), len(QUANTITIES))
        self.add_state("delta_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clean_sum", torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    @staticmethod
    def _scores(model: nn.Module, x: Tensor, labels: Tensor, max_batch: int) -> Tensor:
        """[N, 3] (correct, y_t, p_t) of normalised x [N, 3, H, W] under no_grad, chunked."""
        out = []
        with torch.no_grad():
            for start in range(0, x.shape[0], max_batch):
                y = model(x[start : start + max_batch]).float()
                t = labels[start : start + max_batch, None]
                out.append(torch.stack([
                    (y.argmax(1) == t[:, 0]).float(),
                    y.gather(1, t)[:, 0],
                    torch.softmax(y, 1).gather(1, t)[:, 0],
                ], 1))
        return torch.cat(out)

    def _sign(self, model: nn.Module, xp: Tensor, labels: Tensor, contrast: str) -> Tensor:
        """sign of the contrast's input gradient for pixel-space xp [N, 3, H, W]; [N, 3, H, W]."""
        from explainers import explain

        signs = []
        with torch.enable_grad():
            for start in range(0, xp.shape[0], self.max_batch):
                chunk = (xp[start : start + self.max_batch] - self._mean) / self._std
                res = explain(model, chunk, method="gradient", layer=None,
                              targets=labels[start : start + self.max_batch],
                              contrasts=(contrast,))
                # std > 0, so the sign w.r.t. the normalised input is the pixel-space sign
                signs.append(torch.sign(res.maps[contrast][:, 0].detach()))
        return torch.cat(signs)

    def update(self, model: nn.Module, x: Tensor, labels: Tensor) -> None:
        """x [B, 3, H, W] normalised, labels [B] long; ``model`` is used as given (eval mode)."""
        if x.dim() != 4 or x.shape[1] != 3 or labels.shape != (x.shape[0],):
            raise ValueError(
                f"x must be [B, 3, H, W] and labels [B]; "
                f"got {tuple(x.shape)} and {tuple(labels.shape)}"
            )
        x = x.detach()
        b = x.shape[0]
        clean = self._scores(model, x, labels, self.max_batch)  # [B, 3]
        self.clean_sum += clean.sum(0).double()
        self.count += b
        x0 = x * self._std + self._mean
        lo, hi = (x0 - self.eps).clamp(min=0), (x0 + self.eps).clamp(max=1)
        n_s = len(self.steps)
        steps = torch.tensor(self.steps, device=x.device).repeat_interleave(b)  # [S * B]
        alpha = (self.eps / steps.float()).view(-1, 1, 1, 1)
        lab = labels.repeat(n_s)
        lo_r, hi_r = lo.repeat(n_s, 1, 1, 1), hi.repeat(n_s, 1, 1, 1)
        for ci, contrast in enumerate(self.contrasts):
            xp = x0.repeat(n_s, 1, 1, 1)  # runs for every n, stacked [S * B, 3, H, W]
            for j in range(max(self.steps)):
                # only runs with more than j steps move: steps are sorted, so they are the tail
                rows = slice(b * sum(n <= j for n in self.steps), None)
                upd = xp[rows] + alpha[rows] * self._sign(model, xp[rows], lab[rows], contrast)
                xp[rows] = torch.minimum(torch.maximum(upd, lo_r[rows]), hi_r[rows])
            scores = self._scores(model, (xp - self._mean) / self._std, lab, self.max_batch)
            delta = scores.view(n_s, b, 3) - clean[None]
            self.delta_sum[ci] += delta.sum(1).double()

    def compute(self) -> dict[str, Tensor]:
        """"delta_<acc|logit|prob>/<contrast>/n<steps>", "clean_<acc|logit|prob>", "count"."""
        out: dict[str, Tensor] = {}
        delta = (self.delta_sum / self.count).float()
        for qi, q in enumerate(QUANTITIES):
            for ci, c in enumerate(self.contrasts):
                for si, n in enumerate(self.steps):
                    out[f"delta_{q}/{c}/n{n}"] = delta[ci, si, qi]
            out[f"clean_{q}"] = (self.clean_sum[qi] / self.count).float()
        out["count"] = self.count.float()
        return out
