"""Per-sample random draws that every process repeats: a generator per (seed, dataset index).

The random-logit check's class and ROAD's noise are drawn per image from a CPU generator seeded by
the run's seed and the image's global dataset index, so the draw of an image does not depend on
the batch it falls in, the rank that holds it or the device: 2 processes give the numbers of 1.
"""

from __future__ import annotations

import torch


def sample_generator(seed: int, index: int) -> torch.Generator:
    """A CPU generator seeded by ``(seed, index)`` (seed in the high 32 bits)."""
    return torch.Generator().manual_seed((int(seed) << 32) + int(index))
