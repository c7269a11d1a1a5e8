"""Training randomness as a pure function of (seed, epoch, sample): exact resume, any worker count.

Two things make a fit resumed at an epoch end differ from an uninterrupted one when they depend on
state that a restart does not restore:

- the shuffling order, when it is drawn from the global RNG at iterator creation (torch's
  ``RandomSampler``) or from a sampler whose epoch is set after the iterator prefetched its first
  indices (Lightning 2.6 creates a resumed fit's train iterator before it calls ``set_epoch``);
- the random augmentation, when it runs in persistent workers whose RNGs are seeded once, at
  start-up, and then carry over from epoch to epoch.

``EpochSampler`` yields ``(epoch, index)`` keys from a permutation seeded by ``seed + epoch``, and
``EpochSeededDataset`` seeds the CPU RNGs of ``torch``, ``random`` and ``numpy`` with a hash of
``(seed, epoch, index)`` around every item it reads. The augmentation of a sample then depends on
neither the worker that loads it, nor the rank, nor the number of workers, nor on what ran before,
so persistent workers stay (their start-up cost is paid once per fit).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

_MASK64 = (1 << 64) - 1


def _splitmix64(x: int) -> int:
    """One step of SplitMix64 (Steele et al. 2014): a bijective 64-bit mixer."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK64
    return x ^ (x >> 31)


def sample_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for sample ``index`` in ``epoch`` of a run seeded with ``seed``."""
    h = 0
    for v in (seed, epoch, index):
        h = _splitmix64(h ^ (v & _MASK64))
    return h >> 1


def seed_cpu_rngs(seed: int) -> None:
    """Seed torch's CPU generator, ``random`` and numpy's global RNG (low 32 bits) with ``seed``.

    CUDA generators are left alone: transforms run on the CPU, and dropout on a GPU must not be
    reseeded by data loading in the main process.
    """
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed & 0xFFFFFFFF)  # noqa: NPY002 (the global RNG user transforms draw from)


@contextmanager
def preserved_cpu_rngs() -> Iterator[None]:
    """Restore the CPU RNG states of ``torch``, ``random`` and ``numpy`` on exit."""
    torch_state = torch.get_rng_state()
    py_state = random.getstate()
    np_state = np.random.get_state()  # noqa: NPY002
    try:
        yield
    finally:
        torch.set_rng_state(torch_state)
        random.setstate(py_state)
        np.random.set_state(np_state)  # noqa: NPY002


class EpochSeededDataset(Dataset):
    """``dataset`` read at keys ``(epoch, index)``, each item under its own seed.

    ``self[(epoch, i)]`` is ``dataset[i]`` (e.g. ``(image [3, s, s], label)``) read with the CPU
    RNGs seeded ``sample_seed(seed, epoch, i)``. The caller's RNG states are restored afterwards
    (once per batch through ``__getitems__``, which the DataLoader calls: saving numpy's state
    costs about 0.15 ms, the per-item reseeding about 25 us), so reading data in the main process
    does not move the random stream that dropout draws from. A plain index ``i`` (a sampler that
    Lightning swapped in, e.g. a sequential one for ``overfit_batches``) reads ``(0, i)``.
    """

    def __init__(self, dataset: Dataset, seed: int) -> None:
        self.dataset = dataset
        self.seed = seed

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def _read(self, key: tuple[int, int] | int) -> Any:
        epoch, index = (0, key) if isinstance(key, int) else key
        seed_cpu_rngs(sample_seed(self.seed, epoch, index))
        return self.dataset[index]

    def __getitem__(self, key: tuple[int, int] | int) -> Any:
        with preserved_cpu_rngs():
            return self._read(key)

    def __getitems__(self, keys: list[tuple[int, int] | int]) -> list[Any]:
        with preserved_cpu_rngs():
            return [self._read(key) for key in keys]


class EpochSampler(DistributedSampler):
    """Shuffled ``(epoch, index)`` keys of this rank, a function of ``(seed, epoch)`` only.

    The permutation is torch's ``DistributedSampler`` one (seeded ``seed + epoch``, padded so every
    rank gets ``ceil(N / num_replicas)`` indices); one replica gives a plain permutation of
    ``range(N)``. Lightning calls ``set_epoch`` every epoch and leaves a ``DistributedSampler``
    in place; ``epoch`` sets the starting epoch, for a loader built when a fit resumes.
    """

    def __init__(self, dataset: Dataset, num_replicas: int = 1, rank: int = 0, seed: int = 0,
                 epoch: int = 0) -> None:
        super().__init__(dataset, num_replicas=num_replicas, rank=rank, shuffle=True, seed=seed,
                         drop_last=False)
        self.epoch = epoch

    def __iter__(self) -> Iterator[tuple[int, int]]:  # type: ignore[override]
        epoch = self.epoch
        return ((epoch, i) for i in super().__iter__())
