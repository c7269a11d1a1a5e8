"""Shared LightningDataModule for the fine-grained sets: arguments, transforms, splits, loaders."""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import lightning.pytorch as pl
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from datamodules.image_list import ImageListDataset, find_unreadable
from datamodules.sampler import eval_sampler
from datamodules.seeding import EpochSampler, EpochSeededDataset
from datamodules.transforms import (
    AUGMENTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    eval_transform,
    train_transform,
)
from errors import ConfigError, MissingFileError


@dataclass
class SampleList:
    """One split as files, labels ``[N]`` and optional boxes ``[N, 4]`` (x, y, w, h)."""

    files: list[Path]
    labels: Tensor
    boxes: Tensor | None = None


# The smallest image the transforms and part masks can make (the tests use 32 px).
MIN_IMAGE_SIZE = 8


def missing_dataset_error(name: str, folder: Path, expected: Sequence[str], source: str) -> str:
    """Message for a missing / incomplete dataset folder: expected files, where to get them."""
    return (
        f"{name} not found or incomplete in {folder}. Expected there: {', '.join(expected)}. "
        f"Get it from {source} and pass the folder that contains it as root (nothing is downloaded "
        "at run time)."
    )


def require_files(name: str, folder: Path, expected: Sequence[str], source: str) -> Path:
    """``folder`` if every expected entry (``"x/"`` for a folder) exists, else a clear error."""
    missing = [f for f in expected if not (folder / f.rstrip("/")).exists()]
    if missing:
        raise MissingFileError(missing_dataset_error(name, folder, expected, source)
                               + f" Missing: {', '.join(missing)}.")
    return folder


def check_labels(labels: Tensor, num_classes: int, where: Sequence[str]) -> None:
    """Raise naming the metadata line of the first label outside ``[0, num_classes)``."""
    bad = ((labels < 0) | (labels >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0, 0])
        raise ConfigError(f"Label {int(labels[i])} outside [0, {num_classes}) at {where[i]}")


def check_sizes(image_size: int, batch_size: int, num_workers: int) -> None:
    """One-line errors for sizes no run can use (a 0 would fail deep inside torch or a divide)."""
    for name, value, least, what in (
            ("image_size", image_size, MIN_IMAGE_SIZE, "pixels per side"),
            ("batch_size", batch_size, 1, "images per batch and process"),
            ("num_workers", num_workers, 0, "data-loading processes; 0 loads in the main one")):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ConfigError(f"--data.{name} {value!r}: use an integer >= {least} ({what}).")


def carve_val(n: int, val_fraction: float, seed: int) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into (train, val) indices, ``round(n * val_fraction)`` val."""
    if not 0.0 <= val_fraction < 1.0:
        raise ConfigError(f"val_fraction={val_fraction} must be in [0, 1)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = round(n * val_fraction)
    return sorted(perm[n_val:]), sorted(perm[:n_val])


FORKSERVER_PRELOAD = ("__main__", "torch", "torchvision", "lightning.pytorch", "datamodules")


def worker_start_method(num_workers: int) -> str | None:
    """How data workers start: ``"forkserver"`` where the platform has it, else its default.

    A plain ``fork`` copies a process whose other threads (DDP's, Lightning's child observer,
    a previous loader's queue feeders) may hold the interpreter's locks at that moment; the child
    then waits forever for them. Seen here: a resumed 2-process fit whose worker hung in CPython
    3.11's ``PyOS_AfterFork_Child``. Workers forked by the single-threaded fork server cannot
    inherit such a lock (Python 3.14 makes it the default on Linux for this reason); they are
    persistent, so their start-up is paid once per fit. As with ``spawn``, a script that builds
    the loaders must guard its entry point with ``if __name__ == "__main__":``.
    """
    if num_workers == 0 or "forkserver" not in multiprocessing.get_all_start_methods():
        return None
    # The server starts once per process and imports these (about 4 s on 2 CPU cores); each
    # worker forked from it then finds them loaded. "__main__" is the entry script (train.py,
    # evaluate.py: imports only), which spawn-style workers would otherwise each run again.
    # Ignored once the server runs.
    multiprocessing.set_forkserver_preload(list(FORKSERVER_PRELOAD))
    return "forkserver"


def pin_memory_for(device: torch.device | None) -> bool:
    """Whether loaders should pin host memory: only when batches go to a CUDA device.

    Pinned (page-locked) batches make the host-to-GPU copy faster and asynchronous; on a CPU run
    they only cost locked RAM and a pinning thread.
    """
    return device is not None and device.type == "cuda"


class FineGrainedDataModule(pl.LightningDataModule):
    """Base class. Subclasses implement ``_read_split`` and may set ``has_official_val``.

    Batches: ``(images [B, 3, s, s], labels [B])`` or, with ``with_ground_truth=True`` where the
    dataset has it, ``(images, labels, part_masks [B, P, s, s] bool)``.
    """

    name = "dataset"
    has_official_val = False
    has_ground_truth = False

    def __init__(
        self,
        root: str | Path = "data",
        image_size: int = 224,
        batch_size: int = 32,
        num_workers: int = 4,
        augment: str = "paper",
        val_fraction: float = 0.1,
        seed: int = 0,
        with_ground_truth: bool = False,
        skip_corrupt: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()  # every init argument, the subclass's too (report, run.json)
        # Checkpoints store these: a pathlib object would make weights_only=True loads refuse them
        for key, value in self.hparams.items():
            if isinstance(value, os.PathLike):
                self.hparams[key] = os.fspath(value)
        if augment not in AUGMENTS:
            raise ConfigError(f"augment={augment!r} is not one of {AUGMENTS}")
        check_sizes(image_size=image_size, batch_size=batch_size, num_workers=num_workers)
        if with_ground_truth and not self.has_ground_truth:
            raise ConfigError(f"{self.name} has no ground-truth part masks; use "
                              "with_ground_truth=False (CUB and the synthetic set have them).")
        self.root = Path(root)
        self.image_size = image_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.augment = augment
        self.val_fraction = val_fraction
        self.seed = seed
        self.with_ground_truth = with_ground_truth
        self.skip_corrupt = skip_corrupt
        self.mean: tuple[float, float, float] = IMAGENET_MEAN
        self.std: tuple[float, float, float] = IMAGENET_STD
        self._class_names: list[str] | None = None
        self._dropped: list[Path] = []
        self.train_set: Dataset | None = None
        self.val_set: Dataset | None = None
        self.test_set: Dataset | None = None

    # --- metadata -------------------------------------------------------------------------
    def _read_class_names(self) -> list[str]:
        raise NotImplementedError

    def _read_split(self, split: str) -> SampleList:
        """``split`` in ("train", "val", "test"); "val" only if ``has_official_val``."""
        raise NotImplementedError

    @property
    def class_names(self) -> list[str]:
        """Class names, read lazily from the dataset's metadata."""
        if self._class_names is None:
            self._class_names = self._read_class_names()
        return self._class_names

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def part_names(self) -> list[str]:
        raise ConfigError(f"{self.name} has no ground-truth parts")

    @property
    def part_attributes(self) -> Tensor:
        raise ConfigError(f"{self.name} has no ground-truth parts")

    # --- datasets -------------------------------------------------------------------------
    def prepare_data(self) -> None:
        """No-op: datasets are never downloaded."""

    def _find_unreadable(self, files: Sequence[Path]) -> list[Path]:
        """The files among ``files`` that PIL cannot open and verify."""
        return find_unreadable(files)

    def _unreadable_once(self, files: Sequence[Path]) -> set[Path]:
        """Unreadable ``files``, verified once per run: on rank zero, then broadcast.

        Every rank gets the same list, so all ranks build the same datasets (a transient read
        error on one rank cannot make them differ) and the files are read once, not once per rank.
        """
        trainer = self.trainer
        if trainer is None or trainer.world_size == 1:
            return set(self._find_unreadable(files))
        bad = self._find_unreadable(files) if trainer.is_global_zero else None
        return set(trainer.strategy.broadcast(bad, src=0))

    def _subset(self, samples: SampleList, indices: Sequence[int], train: bool,
                unreadable: set[Path]) -> Dataset:
        if unreadable:
            self._dropped += [samples.files[i] for i in indices if samples.files[i] in unreadable]
            indices = [i for i in indices if samples.files[i] not in unreadable]
        if train:
            tf = train_transform(self.augment, self.image_size, self.mean, self.std)
        else:
            tf = eval_transform(self.image_size, self.mean, self.std)
        gt = self.with_ground_truth and not train
        return ImageListDataset(samples.files, samples.labels, indices, tf,
                                boxes=samples.boxes if gt else None,
                                mask_size=self.image_size if gt else None)

    def setup(self, stage: str | None = None) -> None:
        """Read the metadata and build train / val / test datasets (once)."""
        if self.test_set is not None:
            return
        n_cls = self.num_classes
        self._dropped = []
        train = self._read_split("train")
        check_labels(train.labels, n_cls, [f"{f}" for f in train.files])
        val = self._read_split("val") if self.has_official_val else None
        test = self._read_split("test")
        check_labels(test.labels, n_cls, [f"{f}" for f in test.files])
        bad: set[Path] = set()
        if self.skip_corrupt:
            bad = self._unreadable_once([*train.files, *(val.files if val else []), *test.files])
        if val is not None:
            self.train_set = self._subset(train, range(len(train.files)), True, bad)
            self.val_set = self._subset(val, range(len(val.files)), False, bad)
        else:
            tr_idx, val_idx = carve_val(len(train.files), self.val_fraction, self.seed)
            self.train_set = self._subset(train, tr_idx, True, bad)
            self.val_set = self._subset(train, val_idx, False, bad)
        self.test_set = self._subset(test, range(len(test.files)), False, bad)
        if self._dropped:
            rank_zero_warn(f"skip_corrupt=True: dropped {len(self._dropped)} unreadable image(s) "
                           f"of {self.name}, e.g. {self._dropped[0]}")

    # --- loaders --------------------------------------------------------------------------
    def _root_device(self) -> torch.device | None:
        """The device the attached trainer runs this process on (``None`` without a trainer)."""
        return self.trainer.strategy.root_device if self.trainer is not None else None

    def train_dataloader(self) -> DataLoader:
        """Shuffled, sharded over the trainer's ranks, every random draw a function of the seed.

        Order and augmentation depend only on (run seed, epoch, sample), see
        ``datamodules.seeding``: a fit resumed at an epoch end sees exactly the batches of an
        uninterrupted one, with any number of workers and ranks. The run seed is Lightning's
        ``PL_GLOBAL_SEED`` (``seed_everything``), else this module's ``seed``.
        """
        assert self.train_set is not None, "call setup() first"
        seed = int(os.environ.get("PL_GLOBAL_SEED", self.seed))
        replicas, rank, epoch = 1, 0, 0
        if self.trainer is not None:
            kwargs = self.trainer.distributed_sampler_kwargs or {}
            replicas, rank = kwargs.get("num_replicas", 1), kwargs.get("rank", 0)
            # The epoch Lightning passes to set_epoch; it calls it only after it has created
            # the iterator of a resumed fit (measured with Lightning 2.6).
            epoch = self.trainer.fit_loop.epoch_progress.current.processed
        sampler = EpochSampler(self.train_set, num_replicas=replicas, rank=rank, seed=seed,
                               epoch=epoch)
        # A private generator: creating the iterator draws the workers' base seed from it, not
        # from the global RNG that dropout uses.
        return DataLoader(EpochSeededDataset(self.train_set, seed), batch_size=self.batch_size,
                          sampler=sampler, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0, drop_last=False,
                          pin_memory=pin_memory_for(self._root_device()),
                          multiprocessing_context=worker_start_method(self.num_workers),
                          generator=torch.Generator().manual_seed(seed))

    def _eval_loader(self, ds: Dataset | None) -> DataLoader:
        assert ds is not None, "call setup() first"
        return DataLoader(ds, batch_size=self.batch_size, shuffle=False,
                          sampler=eval_sampler(ds), num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0,
                          pin_memory=pin_memory_for(self._root_device()),
                          multiprocessing_context=worker_start_method(self.num_workers))

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader(self.val_set)

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader(self.test_set)
