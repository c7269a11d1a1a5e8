"""GradientSignPerturbation: the input-space experiment of the paper's Figure 3 (docs/protocol.md
§3)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torchmetrics import Metric

from errors import ConfigError
from explainers import explain_rows
from explainers.engine import input_dtype, result_dtype
from explainers.memory import graph_bytes_per_input
from metrics.paired import add_paired_state, paired_results, update_paired
from results.schema import GRADIENT_SIGN, GRADIENT_SIGN_SCORES, ResultKey, check_values

# Fits a 24 GB GPU at 224 px with VGG-16-BN: 8 GiB of gradient chunks (~55 rows of ~147 MiB
# after the clean image) + 0.5 GiB of weights + ~1.2 GiB of step state at a data batch of 128.
DEFAULT_MEMORY_BUDGET = 8 * 2**30


class GradientSignPerturbation(Metric):
    """Change of accuracy, y_t and p_t after n gradient-sign steps along a contrast's gradient.

    For each contrast of the gradient (target t = the label) and each n in ``steps`` (a separate run
    from the clean image): n times x <- x + eps/n * sign(phi_t(x)), clamped within eps of the clean
    image and to [0, 1] in pixel space (x * std + mean). Reports mean perturbed - clean top-1
    accuracy, y_t and p_t. Higher is "more faithful" for acc / prob (the paper: weighted and max
    raise p_t and accuracy, original and mean mostly raise y_t).

    Work: every run starts at the clean image, so ONE forward and one VJP with a row per contrast
    give all first steps (and the clean scores). Then each step j >= 1 makes one forward and one
    backward for every (contrast, n) run with n > j, each input with its own contrast's row
    (``explainers.explain_rows``). Per image that is ``1 + n_contrasts * sum(n - 1)`` forward +
    backward passes, the number of distinct points (41 with the defaults, against 52 when each run
    restarts), and ``n_contrasts * len(steps)`` no-grad forwards for the final scores.

    Memory: gradient passes are chunked so that one chunk's autograd graph fits ``memory_budget``
    bytes (None: no limit). The cost of an input is measured once per input shape, dtype and model
    (``explainers.memory.graph_bytes_per_input``: saved-tensor bytes of a 1- vs 2-image forward)
    as saved bytes + input + (1 + R) x its widest saved tensor (gradients in flight: input-space
    rows go back one at a time, each leaving about one such tensor) + 2 x R x input (R rows'
    results and their stacked copy). At VGG-16-BN 224 px that is 148 MiB with 1 row (measured
    122 MiB) and 188 MiB with 4 (measured 158 MiB). The no-grad score forwards are chunked by
    ``max_batch``.

    Averages are per-sample sums / count, so DDP is exact (the reproduction averaged per-batch
    means). Steps, clamps and deltas run in float32 whatever the model's precision (inputs are
    cast to it where they enter the model); states are float64 (float32 where the device has no
    float64, see ``metric_state_dtype``).

    Paired differences: each contrast's per-sample deltas minus the original's, per (steps,
    score): ``diff_delta_<score>/gradient/<contrast>/n<k>/<stat>`` (mean, standard error, 95 %
    interval, pairs; ``metrics.paired``), from the SUM state ``delta_paired``.
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
        memory_budget: int | None = DEFAULT_MEMORY_BUDGET,
        **kwargs: object,
    ) -> None:
        super().__init__(**kwargs)
        if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
            raise ConfigError(f"mean={mean}, std={std}: give 3 channel values each, std > 0")
        steps = tuple(int(n) for n in steps)
        if not steps or any(n < 1 for n in steps) or len(set(steps)) != len(steps):
            raise ConfigError(f"steps={steps}: give distinct positive step counts, e.g. (1, 2, 10)")
        if not eps > 0:
            raise ConfigError(f"eps={eps}: must be > 0 (the paper uses 3e-3)")
        if max_batch < 1:
            raise ConfigError(f"max_batch={max_batch}: must be a positive integer")
        if memory_budget is not None and memory_budget <= 0:
            raise ConfigError(
                f"memory_budget={memory_budget}: give bytes > 0 (e.g. {DEFAULT_MEMORY_BUDGET} = "
                "8 GiB) or None for no limit"
            )
        self.contrasts = check_values("contrast", contrasts)
        self.steps = tuple(sorted(steps))
        self.eps = float(eps)
        self.max_batch = int(max_batch)
        self.memory_budget = memory_budget
        self._input_cost: dict[tuple[object, ...], tuple[int, int]] = {}
        self.register_buffer("_mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("_std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        # step sizes: python-float eps / n, as the plain loop writes them (same float32 rounding);
        # a buffer, so that no update copies them to the device
        alpha = torch.tensor([self.eps / n for n in self.steps], dtype=torch.float32)
        self.register_buffer("_alpha", alpha)
        shape = (len(self.contrasts), len(self.steps), len(GRADIENT_SIGN_SCORES))
        # float64 sums; set_dtype(metric_state_dtype(device)) before moving to a device without
        self.add_state("delta_sum", torch.zeros(shape, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("clean_sum", torch.zeros(3, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        add_paired_state(self, "delta", shape)

    # ------------------------------------------------------------------------------ chunking
    def rows_per_chunk(self, model: nn.Module, example: Tensor, vjp_rows: int) -> int:
        """Inputs per gradient pass with ``vjp_rows`` VJP rows each; ``example [1, 3, H, W]``."""
        if self.memory_budget is None:
            return 1 << 62
        saved, widest = self.input_cost(model, example)
        image = example[0].numel() * 4  # a float32 input and each float32 gradient row
        # input-space rows go back one at a time (explainers.engine._backward): the widest
        # activation's gradient in flight plus one more per row (measured on VGG-16-BN, 224 px:
        # +12.2 MiB per extra row = its widest tensor), each row's result and its stacked copy
        per_input = saved + image + (1 + vjp_rows) * widest + 2 * vjp_rows * image
        return max(1, self.memory_budget // per_input)

    def input_cost(self, model: nn.Module, example: Tensor) -> tuple[int, int]:
        """(saved bytes, widest saved tensor) per input of an input-gradient forward, measured
        once per network, input shape, dtype, device and autocast state."""
        # keyed by the first parameter, not the model object: the callback wraps the same
        # network in a fresh precision wrapper every batch
        anchor = next(iter(model.parameters()), model)
        key = (id(anchor), tuple(example.shape[1:]), input_dtype(model), example.device,
               torch.is_autocast_enabled(example.device.type),
               torch.get_autocast_dtype(example.device.type))
        if key not in self._input_cost:
            self._input_cost[key] = graph_bytes_per_input(model, example)
        return self._input_cost[key]

    def _normalise(self, pixels: Tensor) -> Tensor:
        return (pixels - self._mean) / self._std

    @staticmethod
    def _scores(logits: Tensor, labels: Tensor) -> Tensor:
        """[N, 3] (correct, y_t, p_t) from float32 logits [N, C] and labels [N]."""
        t = labels[:, None]
        return torch.stack([
            (logits.argmax(1) == labels).to(logits.dtype),
            logits.gather(1, t)[:, 0],
            torch.softmax(logits, 1).gather(1, t)[:, 0],
        ], 1)

    # -------------------------------------------------------------------------------- update
    def update(self, model: nn.Module, x: Tensor, labels: Tensor) -> None:
        """x [B, 3, H, W] normalised, labels [B] long; ``model`` is used as given (eval mode)."""
        if x.dim() != 4 or x.shape[1] != 3 or labels.shape != (x.shape[0],):
            raise ConfigError(
                f"x must be [B, 3, H, W] and labels [B]; "
                f"got {tuple(x.shape)} and {tuple(labels.shape)}"
            )
        x = x.detach().to(result_dtype(x.dtype))  # steps and clamps never in half precision
        b, n_c, n_s = x.shape[0], len(self.contrasts), len(self.steps)
        if b == 0:
            return
        x0 = x * self._std + self._mean
        lo, hi = (x0 - self.eps).clamp(min=0), (x0 + self.eps).clamp(max=1)
        alpha = self._alpha

        # The clean image: one forward, one VJP row per contrast, and the clean scores.
        per = self.rows_per_chunk(model, x[:1], n_c)
        # every (n, contrast) run's point, [S, n_c, B, 3, H, W]; steps sorted, so runs that still
        # move at a step are a tail along S (dtype explicit: 16-true makes float16 the default)
        xp = torch.empty(n_s, n_c, *x.shape, dtype=x.dtype, device=x.device)
        clean = []
        for i in range(0, b, per):
            j = min(i + per, b)
            which = torch.arange(n_c, device=x.device)[:, None].expand(n_c, j - i)
            grads, logits = explain_rows(model, x[i:j], labels[i:j], which, self.contrasts,
                                         check_targets=i == 0)
            step = alpha.view(n_s, 1, 1, 1, 1, 1) * torch.sign(grads)[None]
            xp[:, :, i:j] = torch.minimum(torch.maximum(x0[i:j] + step, lo[i:j]), hi[i:j])
            clean.append(self._scores(logits, labels[i:j]))
        clean_scores = torch.cat(clean)

        # Later steps: every run that still moves, each along its own contrast, in one pass.
        per = self.rows_per_chunk(model, x[:1], 1)
        for step in range(1, self.steps[-1]):
            moving = sum(n <= step for n in self.steps)  # runs with n > step are the tail
            pts = xp[moving:].flatten(0, 2)  # [(S') * n_c * B, 3, H, W], a view
            rows = pts.shape[0]
            for i in range(0, rows, per):
                j = min(i + per, rows)
                r = torch.arange(i, j, device=x.device)  # row = (run - moving, contrast, image)
                img, which = r % b, (r // b) % n_c
                step_size = alpha[moving + r // (b * n_c)].view(-1, 1, 1, 1)
                grads, _ = explain_rows(model, self._normalise(pts[i:j]),
                                        labels.index_select(0, img), which, self.contrasts)
                upd = pts[i:j] + step_size * torch.sign(grads)
                pts[i:j] = torch.minimum(
                    torch.maximum(upd, lo.index_select(0, img)), hi.index_select(0, img))

        # Final scores of every run, plain no-grad forwards.
        finals = xp.flatten(0, 2)
        lab = labels.repeat(n_s * n_c)
        dtype = input_dtype(model)
        out = []
        with torch.no_grad():
            for i in range(0, finals.shape[0], self.max_batch):
                logits = model(self._normalise(finals[i:i + self.max_batch]).to(dtype)).float()
                out.append(self._scores(logits, lab[i:i + self.max_batch]))
        delta = torch.cat(out).view(n_s, n_c, b, 3) - clean_scores[None, None]
        self.delta_sum += delta.sum(2).transpose(0, 1).to(self.delta_sum.dtype)
        self.clean_sum += clean_scores.sum(0).to(self.clean_sum.dtype)
        self.count += b
        if "original" in self.contrasts:  # per sample [B, n_c, n_s, 3], the state's cells
            update_paired(self, "delta", delta.permute(2, 1, 0, 3), 1,
                          self.contrasts.index("original"))

    def compute(self) -> dict[str, Tensor]:
        """``{result key: value}`` (``results.schema``, method ``gradient``):
        delta_<acc|logit|prob> per (contrast, steps), clean_<acc|logit|prob>, count, and
        diff_delta_<acc|logit|prob> per cell of every contrast but the original (per stat)."""
        out: dict[str, Tensor] = {}
        delta = (self.delta_sum / self.count).float()
        for qi, q in enumerate(GRADIENT_SIGN_SCORES):
            for ci, c in enumerate(self.contrasts):
                for si, n in enumerate(self.steps):
                    key = ResultKey(f"delta_{q}", GRADIENT_SIGN, contrast=c, steps=n)
                    out[str(key)] = delta[ci, si, qi]
            out[str(ResultKey(f"clean_{q}", GRADIENT_SIGN))] = \
                (self.clean_sum[qi] / self.count).float()
        out[str(ResultKey("count", GRADIENT_SIGN))] = self.count.float()
        if "original" in self.contrasts:
            out.update(paired_results(self, "delta", self._cell_key))
        return out

    def _cell_key(self, idx: tuple[int, ...]) -> ResultKey | None:
        """The delta key of state cell (contrast, steps, score); None for the original's."""
        c, n, q = idx
        if self.contrasts[c] == "original":
            return None
        return ResultKey(f"delta_{GRADIENT_SIGN_SCORES[q]}", GRADIENT_SIGN,
                         contrast=self.contrasts[c], steps=self.steps[n])
