"""The whole evaluation per test batch against its floor, part by part, and its peak memory.

What ``ContrastiveEvaluation.on_test_batch_end`` does, through its own ``EvaluationStep`` and
the same ``InPrecision`` wrapper: per method (gradcam, linear_approx; top-2; original + weighted)
one ``explain`` call, ``PerturbationScore.update`` (48 perturbed images per image and method) and
``PartLocalization.update``; then ``GradientSignPerturbation.update`` (n = 1, 2, 10, 4 contrasts).
The floor is the model work that cannot be avoided, replayed in the same run on the very inputs
the evaluation fed the model (recorded by a forward pre-hook): a plain ``no_grad`` forward for
every perturbed image (masking protocol, and the gradient-sign runs' final points) and one
forward + one backward to the input for every distinct gradient-sign point (the model's
parameters frozen, one output row). Explain calls and localisation have no floor of their own;
their time counts against the whole.

Efficiency per part: ``masking`` = its replayed forwards / (explain + masking update);
``gradient_sign`` = its replayed passes / its update; ``whole`` = all floors / all parts
(localisation included). Goal: whole >= 0.85. The timed passes follow an untimed pass on the
first batch (kernels and shapes seen once), which is also where peak memory is read: CUDA's max
allocated, on a CPU the peak resident set above the level before it (sampled every millisecond).

``--project-memory B``: the peak at data batch B (default 128) in the real setting, from each
phase measured at 1 and 2 (or 2 and 4) rows: the explain forward at B images, one perturbed
forward chunk, one gradient-sign chunk of the memory budget's size, plus the step state and the
weights. On CUDA it is measured directly as well by running with ``--batch B``.

``--clock cpu`` times this process's CPU seconds instead of the wall clock (CPU only, with
``OMP_NUM_THREADS=1``): on a CPU shared with other jobs single wall-clock pairs scatter widely
(quick mode 0.55-1.27 in one run at load 4 on 2 cores), CPU seconds much less.

``python -m benchmarks.whole_evaluation [--quick] [--images N] [--batch B] [--repeats R]
[--precision 32-true|bf16-mixed|16-mixed|bf16-true|16-true] [--project-memory [B]]
[--clock wall|cpu] [--json PATH]``
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from errors import ConfigError

METHODS = ("gradcam", "linear_approx")
GOAL = 0.85
CUB_TEST_IMAGES = 5794
GiB = 2**30
_clocks = {"wall": time.perf_counter, "cpu": time.process_time}
_clock = _clocks["wall"]


# ------------------------------------------------------------------------------------ memory
class PeakMemory:
    """Peak memory of a block: CUDA's max allocated, or the CPU's resident set (sampled)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.peak = 0  # bytes above the level at entry (CPU) / absolute max allocated (CUDA)
        self.delta = 0  # bytes above the level at entry, both devices

    @staticmethod
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    @contextlib.contextmanager
    def measure(self) -> Iterator[PeakMemory]:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            start = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            yield self
            torch.cuda.synchronize(self.device)
            self.peak = torch.cuda.max_memory_allocated(self.device)
            self.delta = self.peak - start
            return
        start, top, done = self.rss(), [0], threading.Event()

        def poll() -> None:
            while not done.is_set():
                top[0] = max(top[0], self.rss())
                time.sleep(0.001)

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        try:
            yield self
        finally:
            done.set()
            thread.join()
            self.peak = max(top[0], self.rss())
            self.delta = self.peak - start


def _return_freed_memory() -> None:
    """Make glibc hand large freed blocks back to the OS at once, so that the resident set
    follows the tensors alive (its adaptive mmap threshold would keep freed activations of up to
    32 MiB in the heap, and later phases would reuse them unseen). Every large allocation then
    maps fresh pages, which slows the process: the timed passes run without it (their peak is
    the resident set as glibc leaves it)."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 17)  # M_MMAP_THRESHOLD = 128 KiB, fixed


# --------------------------------------------------------------------------------- recording
@dataclass
class _Recorder:
    """Inputs of the model's forwards while ``part`` is set: (part, with grad, input).

    Held by reference, not copied (a copy would be timed as the part's work): the curves compose
    every chunk in one reused buffer, so their replay sees its last contents, the same shapes
    and so the same work for the network."""

    part: str | None = None
    calls: list[tuple[str, bool, Tensor]] = field(default_factory=list)

    def hook(self, _m: nn.Module, args: tuple[Tensor, ...]) -> None:
        if self.part is not None:
            self.calls.append((self.part, torch.is_grad_enabled(), args[0].detach()))


def _frozen(model: nn.Module) -> contextlib.AbstractContextManager:
    """Parameters frozen for the floor's backward (restored after, even on errors)."""

    @contextlib.contextmanager
    def ctx() -> Iterator[None]:
        flags = [p.requires_grad for p in model.parameters()]
        model.requires_grad_(False)
        try:
            yield
        finally:
            for p, flag in zip(model.parameters(), flags, strict=True):
                p.requires_grad_(flag)

    return ctx()


def use_clock(name: str) -> None:
    """``"wall"`` (default) or ``"cpu"``: this process's CPU seconds, steadier than wall time on
    a CPU shared with other jobs (run it with one thread: idle threads' spinning would count)."""
    global _clock
    if name == "cpu" and torch.cuda.is_available():
        raise ConfigError("clock='cpu' times CPU work; on a GPU use the wall clock")
    _clock = _clocks[name]


def _replay(net: nn.Module, calls: list[tuple[str, bool, Tensor]], part: str,
            sync: Callable[[], None]) -> float:
    """Seconds of the floor for ``part``: no-grad forwards, and forward + backward to the input
    (one output row, parameters frozen) where the evaluation took a gradient."""
    sync()
    start = _clock()
    with _frozen(net):
        for name, grad, x in calls:
            if name != part:
                continue
            if grad:
                with torch.enable_grad():
                    a = x.requires_grad_(True)
                    torch.autograd.grad(net(a)[:, 0].sum(), a)
            else:
                with torch.no_grad():
                    net(x)
    sync()
    return _clock() - start


# ---------------------------------------------------------------------------------- settings
@dataclass
class Setting:
    backbone: str
    size: int
    batch: int
    images: int
    repeats: int
    max_batch: int = 256


def setting(quick: bool, device: torch.device, images: int | None = None,
            batch: int | None = None, repeats: int | None = None) -> Setting:
    """tiny_vgg 64 px (quick) or VGG-16-BN 224 px: 128 images on a GPU, 1 on a CPU."""
    if quick:
        s = Setting("tiny_vgg", 64, batch=8, images=16, repeats=3)
    elif device.type == "cuda":
        s = Setting("vgg16_bn", 224, batch=128, images=128, repeats=1)
    else:  # one 224 px VGG-16-BN forward is about 0.3 s per image on 2 CPU cores
        s = Setting("vgg16_bn", 224, batch=1, images=1, repeats=1)
    s.images = images or s.images
    s.batch = min(batch or s.batch, s.images)
    s.repeats = repeats or s.repeats
    if s.images % s.batch:
        raise ConfigError(f"images={s.images}: use a multiple of the batch size {s.batch}")
    return s


def _precision(name: str, device: torch.device):
    """Lightning's own precision plugin for ``name``, as the Trainer builds it."""
    from lightning.pytorch.plugins.precision import HalfPrecision, MixedPrecision, Precision

    if name in ("16-mixed", "bf16-mixed"):
        if name == "16-mixed" and device.type == "cpu":
            name = "bf16-mixed"  # what Lightning does on a CPU (with a warning)
        return MixedPrecision(name, device.type)
    if name in ("16-true", "bf16-true"):
        return HalfPrecision(name)
    if name != "32-true":
        raise ConfigError(
            f"precision={name!r}: use 32-true, bf16-mixed, 16-mixed, bf16-true or 16-true"
        )
    return Precision()


# --------------------------------------------------------------------------------------- run
def run(
    quick: bool = False,
    images: int | None = None,
    batch: int | None = None,
    repeats: int | None = None,
    precision: str = "32-true",
    curves: bool = False,
) -> dict[str, float]:
    """Time every part of the evaluation and its floor; peak memory of the untimed pass.

    ``curves``: also the faithfulness curves with the callback's defaults (their floor: no-grad
    forwards of the very images they fed the model, in the same chunks)."""
    from callbacks import ContrastiveEvaluation
    from callbacks.evaluation_step import PARTS
    from callbacks.precision import InPrecision
    from lightning_modules.backbones import BACKBONES, build_backbone

    torch.manual_seed(0)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    s = setting(quick, device, images, batch, repeats)
    spec = BACKBONES[s.backbone]
    plugin = _precision(precision, device)
    classes = 10 if quick else 200
    model = plugin.convert_module(build_backbone(s.backbone, classes, None).eval().to(device))
    net = InPrecision(model, plugin.forward_context)
    g = torch.Generator().manual_seed(0)
    x_all = torch.randn(s.images, 3, s.size, s.size, generator=g).to(device)
    labels_all = torch.randint(0, classes, (s.images,), generator=g).to(device)
    masks_all = (torch.rand(s.images, 3, s.size, s.size, generator=g) > 0.6).to(device)
    attributes = torch.randint(0, 3, (classes, 3), generator=g).to(device)
    # the callback's own per-batch step with its default protocol; every image selected
    evaluation = ContrastiveEvaluation(methods=METHODS, threshold=None, max_batch=s.max_batch,
                                       curves=curves)
    step = evaluation.evaluation_step("net." + spec.explain_layer, (0.485, 0.456, 0.406),
                                      (0.229, 0.224, 0.225)).to(device)

    def sync() -> None:
        if device.type == "cuda":  # CUDA kernels are asynchronous: time finished work only
            torch.cuda.synchronize(device)

    recorder = _Recorder()
    handle = model.register_forward_pre_hook(recorder.hook)
    record = True

    def evaluate(xs: Tensor, labels: Tensor, masks: Tensor) -> dict[str, float]:
        """One pass over ``xs`` in data batches through the callback's step: seconds per part."""
        secs = dict.fromkeys(PARTS, 0.0)

        @contextlib.contextmanager
        def timed(part: str) -> Iterator[None]:
            sync()
            start = _clock()
            recorder.part = part if record else None
            try:
                yield
            finally:
                recorder.part = None
                sync()
                secs[part] += _clock() - start

        for i in range(0, xs.shape[0], s.batch):
            x, y, m = xs[i:i + s.batch], labels[i:i + s.batch], masks[i:i + s.batch]
            x = plugin.convert_input(x)  # what Lightning hands the callback (bf16 for *-true)
            step.update(net, x, y, m, attributes, timer=timed)
        return secs

    memory = PeakMemory(device)
    try:
        record = False
        with memory.measure():  # warm-up: the same shapes as the timed passes
            evaluate(x_all[:s.batch], labels_all[:s.batch], masks_all[:s.batch])
        record = True
        runs = []
        for _ in range(s.repeats):
            recorder.calls = []
            secs = evaluate(x_all, labels_all, masks_all)
            secs["floor_masking"] = _replay(net, recorder.calls, "masking", sync)
            secs["floor_gradient_sign"] = _replay(net, recorder.calls, "gradient_sign", sync)
            secs["floor_curves"] = _replay(net, recorder.calls, "curves", sync) if curves else 0.0
            secs["n_curve_images"] = sum(x.shape[0] for p, _, x in recorder.calls
                                         if p == "curves")
            secs["n_perturbed"] = sum(x.shape[0] for p, gr, x in recorder.calls
                                      if p == "masking")
            secs["n_gs_points"] = sum(x.shape[0] for p, gr, x in recorder.calls
                                      if p == "gradient_sign" and gr)
            secs["n_gs_final"] = sum(x.shape[0] for p, gr, x in recorder.calls
                                     if p == "gradient_sign" and not gr)
            runs.append(secs)
            recorder.calls = []
    finally:
        handle.remove()
    for r in runs:
        r["total_s"] = sum(r[p] for p in PARTS)
        r["efficiency"] = (r["floor_masking"] + r["floor_gradient_sign"]
                           + r["floor_curves"]) / r["total_s"]
    ratios = [r["efficiency"] for r in runs]
    best = runs[ratios.index(statistics.median_low(ratios))]
    n = float(s.images)
    out = {
        "efficiency": statistics.median(ratios),
        "efficiency_min": min(ratios),
        "efficiency_max": max(ratios),
        "efficiency_masking": best["floor_masking"] / (best["explain"] + best["masking"]),
        "efficiency_gradient_sign": best["floor_gradient_sign"] / best["gradient_sign"],
        "localisation_share": best["localisation"] / best["total_s"],
        "images_per_s": n / best["total_s"],
        **{f"{p}_s": best[p] for p in PARTS},
        "total_s": best["total_s"],
        "floor_masking_s": best["floor_masking"],
        "floor_gradient_sign_s": best["floor_gradient_sign"],
        "n_perturbed": float(best["n_perturbed"]),
        "n_gs_points": float(best["n_gs_points"]),
        "n_gs_final": float(best["n_gs_final"]),
        "n_images": n,
        "batch": float(s.batch),
        "repeats": float(s.repeats),
        "peak_memory_gib": memory.peak / GiB,
        "peak_memory_delta_gib": memory.delta / GiB,
    }
    if curves:
        out["floor_curves_s"] = best["floor_curves"]
        out["efficiency_curves"] = best["floor_curves"] / best["curves"]
        out["n_curve_images"] = float(best["n_curve_images"])
    return out


def project_cub_hours(result: dict[str, float], share: float) -> float:
    """Hours for the CUB test split (5,794 images) when a fraction ``share`` of the images pass
    p_t2 > 0.1: explain, localisation and gradient sign run on every image, the masking
    protocol (the benchmark ran it on every image, threshold None) on that share only."""
    n = result["n_images"]
    every = result["explain_s"] + result["localisation_s"] + result["gradient_sign_s"]
    thresholded = result["masking_s"] + result.get("curves_s", 0.0)  # curves: same samples
    return CUB_TEST_IMAGES * (every + share * thresholded) / n / 3600


# ---------------------------------------------------------------------------- memory project
def project_memory(
    batch: int = 128,
    precision: str = "32-true",
    backbone: str = "vgg16_bn",
    size: int = 224,
    budget: int | None = None,
) -> dict[str, float]:
    """Peak memory of an evaluation (VGG-16-BN, 224 px) at data batch ``batch``, phase by phase.

    Each phase's peak above its starting level is measured at two small sizes with the real
    code and extrapolated linearly to its size at ``batch``: the explain forward + VJP (``batch``
    images, 4 rows), one perturbed no-grad forward chunk (as ``PerturbationScore`` forms it), a
    gradient-sign chunk at the clean image (4 rows per input) and after it (1 row), with as many
    inputs as ``GradientSignPerturbation.rows_per_chunk`` puts in one under the default budget.
    Resident throughout: weights and buffers, the batch, and during gradient sign its state
    (every run's point plus x0 / lo / hi, float32).
    """
    from callbacks.precision import InPrecision
    from explainers import explain, explain_rows
    from explainers.engine import input_dtype
    from explainers.memory import graph_bytes_per_input
    from lightning_modules.backbones import BACKBONES, build_backbone
    from metrics import GradientSignPerturbation
    from metrics.perturbation_score import _chunks

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.type == "cpu":
        _return_freed_memory()  # process-wide and slows allocation: only for this measurement
    spec = BACKBONES[backbone]
    plugin = _precision(precision, device)
    model = plugin.convert_module(build_backbone(backbone, 200, None).eval().to(device))
    net = InPrecision(model, plugin.forward_context)
    layer = "net." + spec.explain_layer
    x = torch.randn(4, 3, size, size, device=device)
    gsp = GradientSignPerturbation((0.5,) * 3, (0.25,) * 3).to(device)
    if budget is not None:
        gsp.memory_budget = budget
    n_c, n_s = len(gsp.contrasts), len(gsp.steps)
    per_image_rows = 48  # 3 baselines x 2 modes x 2 maskings x 2 contrasts x 2 ranks
    perturbed_rows = max(i1 - i0 for i0, i1, _ in _chunks(batch, per_image_rows, 256)) * 48

    def slope(fn: Callable[[int], object], sizes: tuple[int, int]) -> tuple[float, float]:
        peaks = []
        for n in sizes:
            mem = PeakMemory(device)
            with mem.measure():
                fn(n)
            peaks.append(mem.delta)
        per = (peaks[1] - peaks[0]) / (sizes[1] - sizes[0])
        return per, peaks[0] - per * sizes[0]

    def explain_phase(n: int) -> None:
        explain(net, x[:n], method="gradcam", layer=layer, topk=2,
                contrasts=("original", "weighted"))

    def perturbed_phase(n: int) -> None:
        with torch.no_grad():
            net(x[:n].to(plugin_dtype))

    def gs_phase(rows: int) -> Callable[[int], None]:
        def go(n: int) -> None:
            which = torch.zeros(rows, n, dtype=torch.long, device=device)
            explain_rows(net, x[:n], torch.zeros(n, dtype=torch.long, device=device),
                         which.squeeze(0) if rows == 1 else which, gsp.contrasts)
        return go

    plugin_dtype = input_dtype(model)
    chunk_clean = min(batch, gsp.rows_per_chunk(net, x[:1], n_c))
    chunk_step = min(batch * n_c * (n_s - 1), gsp.rows_per_chunk(net, x[:1], 1))
    weights = sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
    image = 3 * size * size * 4
    state = (n_s * n_c + 4) * batch * image  # every run's point, x, x0, lo, hi
    phases = {}
    for name, fn, size, sizes in (
        ("explain", explain_phase, batch, (1, 2)),
        ("perturbed_forward", perturbed_phase, perturbed_rows, (2, 4)),
        ("gs_clean_chunk", gs_phase(n_c), chunk_clean, (1, 2)),
        ("gs_step_chunk", gs_phase(1), chunk_step, (1, 2)),
    ):
        per, const = slope(fn, sizes)
        extra = state if name.startswith("gs") else 0
        phases[name] = (weights + batch * image + extra + const + per * size) / GiB
        phases[f"{name}_per_row_mib"] = per / 2**20
        phases[f"{name}_rows"] = float(size)
    saved, widest = gsp.input_cost(net, x[:1])
    phases["gs_estimate_per_row_mib"] = (saved + image + 2 * widest + 2 * image) / 2**20
    phases["gs_estimate_per_row_mib_4_rows"] = (saved + image + 5 * widest + 8 * image) / 2**20
    phases["gs_saved_per_input_mib"] = saved / 2**20
    # what the explain forward keeps for backward per image: the engine's forward (detached
    # parameters) against a plain forward whose parameters require grad
    phases["explain_saved_per_image_mib"] = graph_bytes_per_input(
        net, x[:1], layer)[0] / 2**20
    phases["explain_saved_per_image_mib_params_grad"] = _plain_saved_per_input(
        net, x[:1], layer) / 2**20
    phases["peak_gib"] = max(phases[k] for k in ("explain", "perturbed_forward",
                                                  "gs_clean_chunk", "gs_step_chunk"))
    phases["batch"] = float(batch)
    return phases


def _plain_saved_per_input(model: nn.Module, example: Tensor, layer: str) -> int:
    """Saved-tensor bytes per input of ``model(x)`` with the parameters requiring grad (the
    explain forward before it ran over detached parameters), from 1 and 2 copies of ``example``."""
    from explainers.hooks import capture
    from explainers.memory import saved_tensor_bytes

    def total(n: int) -> int:
        def forward() -> Tensor:
            with torch.enable_grad(), capture(model, layer):
                return model(example.expand(n, -1, -1, -1))
        return sum(saved_tensor_bytes(forward)[1])

    return total(2) - total(1)


def main() -> None:
    """Print the measurement (and the memory projection when asked)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny_vgg at 64 px (seconds)")
    parser.add_argument("--images", type=int, help="images in each timed pass")
    parser.add_argument("--batch", type=int, help="data batch size")
    parser.add_argument("--repeats", type=int, help="timed pass + replay pairs (median)")
    parser.add_argument("--precision", default="32-true", help="as --trainer.precision")
    parser.add_argument("--share", type=float, default=0.25,
                        help="share of CUB test images with p_t2 > 0.1 for the projection")
    parser.add_argument("--project-memory", type=int, metavar="B", nargs="?", const=128,
                        help="project the peak memory at data batch B (VGG-16-BN, 224 px)")
    parser.add_argument("--skip-timing", action="store_true", help="only --project-memory")
    parser.add_argument("--json", metavar="PATH", help="also write the numbers to PATH (JSON)")
    parser.add_argument("--curves", action="store_true",
                        help="also the faithfulness curves (the callback's defaults)")
    parser.add_argument("--clock", choices=sorted(_clocks), default="wall",
                        help="cpu: this process's CPU seconds (CPU only; use OMP_NUM_THREADS=1)")
    args = parser.parse_args()
    use_clock(args.clock)
    written: dict[str, object] = {"precision": args.precision, "clock": args.clock,
                                  "device": "cuda" if torch.cuda.is_available() else "cpu"}
    if not args.skip_timing:
        r = run(quick=args.quick, images=args.images, batch=args.batch, repeats=args.repeats,
                precision=args.precision, curves=args.curves)
        print(f"{'part':<15}{'seconds':>10}{'floor s':>10}{'efficiency':>12}{'images/s':>10}")
        n = r["n_images"]
        print(f"{'explain':<15}{r['explain_s']:>10.3f}{'-':>10}{'-':>12}"
              f"{n / r['explain_s']:>10.2f}")
        print(f"{'masking':<15}{r['masking_s']:>10.3f}{r['floor_masking_s']:>10.3f}"
              f"{r['efficiency_masking']:>12.3f}{n / (r['explain_s'] + r['masking_s']):>10.2f}")
        print(f"{'localisation':<15}{r['localisation_s']:>10.3f}{'-':>10}{'-':>12}"
              f"{n / r['localisation_s']:>10.1f}")
        print(f"{'gradient_sign':<15}{r['gradient_sign_s']:>10.3f}"
              f"{r['floor_gradient_sign_s']:>10.3f}{r['efficiency_gradient_sign']:>12.3f}"
              f"{n / r['gradient_sign_s']:>10.2f}")
        if args.curves:
            print(f"{'curves':<15}{r['curves_s']:>10.3f}{r['floor_curves_s']:>10.3f}"
                  f"{r['efficiency_curves']:>12.3f}{n / r['curves_s']:>10.2f}")
        floor = r["floor_masking_s"] + r["floor_gradient_sign_s"] + r.get("floor_curves_s", 0.0)
        print(f"{'whole':<15}{r['total_s']:>10.3f}{floor:>10.3f}{r['efficiency']:>12.3f}"
              f"{r['images_per_s']:>10.2f}")
        for key, value in r.items():
            print(f"{key:>26}: {value:.4g}")
        print(f"peak memory {r['peak_memory_gib']:.2f} GiB "
              f"({'CUDA max allocated' if torch.cuda.is_available() else 'CPU peak RSS'}), "
              f"{r['peak_memory_delta_gib']:.2f} GiB above the start of the pass")
        for share in (args.share, 1.0):
            print(f"projected CUB test split ({CUB_TEST_IMAGES} images, p_t2 > 0.1 share "
                  f"{share:.2f}): {project_cub_hours(r, share):.2f} h")
        print(f"efficiency {r['efficiency']:.3f} (goal >= {GOAL})")
        written["timing"] = r
    if args.project_memory:
        p = project_memory(args.project_memory, args.precision)
        for key, value in p.items():
            print(f"{key:>34}: {value:.4g}")
        fits = "fits" if p["peak_gib"] < 24e9 / GiB else "does NOT fit"
        print(f"projected peak at data batch {args.project_memory}: {p['peak_gib']:.2f} GiB "
              f"({fits} 24 GB)")
        written["memory_projection"] = p
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(written, fh, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
