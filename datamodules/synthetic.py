"""SyntheticDataModule: the in-memory procedural fine-grained set with part-mask ground truth."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules import synthetic_scene
from datamodules.base import FineGrainedDataModule, carve_val
from datamodules.transforms import eval_transform, train_transform


class SceneDataset(Dataset):
    """Items ``(image [3, s, s] normalised, label)`` or ``(image, label, masks [P, s, s] bool)``."""

    def __init__(self, images: Tensor, labels: Tensor, masks: Tensor | None,
                 transform: Callable) -> None:
        self.images, self.labels, self.masks, self.transform = images, labels, masks, transform

    def __len__(self) -> int:
        return self.labels.shape[0]

    def __getitem__(self, idx: int) -> tuple[Tensor, ...]:
        x = self.transform(self.images[idx].float() / 255)
        if self.masks is None:
            return x, self.labels[idx]
        return x, self.labels[idx], self.masks[idx]


class SyntheticDataModule(FineGrainedDataModule):
    """Procedural "birds" (see ``synthetic_scene``), deterministic per ``seed``, no files.

    Train and test scenes come from different seeds (``seed`` and ``seed + 1``); val is carved from
    train. Part masks (``part_names`` = body, head, wing) are returned with ``with_ground_truth``.
    """

    name = "synthetic"
    has_ground_truth = True

    def __init__(
        self,
        image_size: int = 64,
        batch_size: int = 64,
        num_workers: int = 0,
        augment: str = "none",
        val_fraction: float = 0.1,
        seed: int = 0,
        num_classes: int = 10,
        num_train: int = 2000,
        num_test: int = 500,
        with_ground_truth: bool = False,
        root: str | None = None,
    ) -> None:
        synthetic_scene._check_classes(num_classes)
        super().__init__(root=root or ".", image_size=image_size, batch_size=batch_size,
                         num_workers=num_workers, augment=augment, val_fraction=val_fraction,
                         seed=seed, with_ground_truth=with_ground_truth)
        self._num_classes = num_classes
        self.num_train = num_train
        self.num_test = num_test

    def _read_class_names(self) -> list[str]:
        return synthetic_scene.class_names(self._num_classes)

    @property
    def part_names(self) -> list[str]:
        return list(synthetic_scene.PART_NAMES)

    @property
    def part_attributes(self) -> Tensor:
        return synthetic_scene.part_attributes(self._num_classes)

    def setup(self, stage: str | None = None) -> None:
        """Draw (once) train and test scenes and carve val from train."""
        if self.test_set is not None:
            return
        s, c = self.image_size, self._num_classes
        x, y, m = synthetic_scene.make_scenes(self.num_train, c, s, self.seed)
        xt, yt, mt = synthetic_scene.make_scenes(self.num_test, c, s, self.seed + 1)
        tr, va = carve_val(self.num_train, self.val_fraction, self.seed)
        tr_t, va_t = torch.tensor(tr, dtype=torch.long), torch.tensor(va, dtype=torch.long)
        ev = eval_transform(s, self.mean, self.std, tensor_input=True)
        trf = train_transform(self.augment, s, self.mean, self.std, tensor_input=True)
        gt = self.with_ground_truth
        self.train_set = SceneDataset(x[tr_t], y[tr_t], None, trf)
        self.val_set = SceneDataset(x[va_t], y[va_t], m[va_t] if gt else None, ev)
        self.test_set = SceneDataset(xt, yt, mt if gt else None, ev)
