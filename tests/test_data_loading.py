"""Train loader: order and augmentation depend on (seed, epoch, sample); pinned memory on CUDA."""

from __future__ import annotations

import pytest
import torch
from lightning.pytorch import Trainer

from datamodules import SyntheticDataModule
from datamodules.base import pin_memory_for, worker_start_method
from datamodules.seeding import EpochSampler, EpochSeededDataset, sample_seed


def _dm(num_workers: int) -> SyntheticDataModule:
    dm = SyntheticDataModule(image_size=32, batch_size=5, num_workers=num_workers,
                             augment="light", num_train=24, num_test=4, seed=3)
    dm.setup()
    return dm


def _epoch(loader: torch.utils.data.DataLoader) -> list[tuple[torch.Tensor, torch.Tensor]]:
    return [(x.clone(), y.clone()) for x, y in loader]


def _same(a: list, b: list) -> bool:
    return len(a) == len(b) and all(torch.equal(xa, xb) and torch.equal(ya, yb)
                                    for (xa, ya), (xb, yb) in zip(a, b, strict=True))


def test_sample_seed_mixes_every_argument() -> None:
    seeds = {sample_seed(s, e, i) for s in range(3) for e in range(3) for i in range(50)}
    assert len(seeds) == 3 * 3 * 50  # (seed, epoch) = (0, 1) and (1, 0) differ, unlike seed + epoch
    assert all(0 <= s < 2**63 for s in seeds)
    assert sample_seed(0, 1, 2) == sample_seed(0, 1, 2)


def test_item_augmentation_depends_on_key_only() -> None:
    dm = _dm(0)
    ds = EpochSeededDataset(dm.train_set, seed=0)
    state = torch.get_rng_state()
    a = ds[(1, 5)][0]
    torch.rand(100)  # whatever ran in between
    assert torch.equal(ds[(1, 5)][0], a)
    assert not torch.equal(ds[(2, 5)][0], a)  # another epoch, another crop / flip
    assert torch.equal(ds[5][0], ds[(0, 5)][0])  # a plain index (Lightning's overfit_batches)
    batch = ds.__getitems__([(2, 5), (1, 5)])  # what the DataLoader calls
    assert torch.equal(batch[1][0], a) and torch.equal(batch[0][0], ds[(2, 5)][0])
    torch.set_rng_state(state)
    ds[(1, 5)]
    ds.__getitems__([(1, 5), (1, 6)])
    assert torch.equal(torch.get_rng_state(), state)  # the caller's RNG is left as it was


def test_sampler_shards_cover_the_set_and_depend_on_seed_and_epoch() -> None:
    data = list(range(11))
    for epoch in (0, 1):
        ranks = [list(EpochSampler(data, num_replicas=2, rank=r, seed=5, epoch=epoch))
                 for r in (0, 1)]
        assert all(len(keys) == 6 for keys in ranks) and {e for k in ranks for e, _ in k} == {epoch}
        assert {i for k in ranks for _, i in k} == set(data)  # one index padded twice
    late = EpochSampler(data, seed=5)
    late.set_epoch(1)
    assert list(late) == list(EpochSampler(data, seed=5, epoch=1))
    assert [i for _, i in EpochSampler(data, seed=5, epoch=1)] != \
        [i for _, i in EpochSampler(data, seed=5, epoch=0)]
    assert sorted(i for _, i in EpochSampler(data, seed=6)) == data


@pytest.mark.slow  # 2 workers from the fork server, which imports torch first
def test_persistent_workers_resume_exactly() -> None:
    """Epoch 1 read on after epoch 0 (workers live on) == epoch 1 read by a fresh loader.

    The fresh loader is what a resumed fit builds; the batches also equal those read in the main
    process (``num_workers=0``), so the worker count does not change training either.
    """
    runs = {}
    for workers in (0, 2):
        loader = _dm(workers).train_dataloader()
        state = torch.get_rng_state()
        first = _epoch(loader)
        assert torch.equal(torch.get_rng_state(), state)  # dropout's stream is not moved
        loader.sampler.set_epoch(1)
        runs[workers] = (first, _epoch(loader))
    fresh = _dm(2).train_dataloader()
    fresh.sampler.set_epoch(1)
    resumed = _epoch(fresh)
    assert _same(runs[2][1], resumed)
    assert _same(runs[0][0], runs[2][0]) and _same(runs[0][1], runs[2][1])
    assert not _same(runs[0][0], runs[0][1])


def test_train_loader_follows_the_attached_trainer(tmp_path) -> None:
    dm = _dm(0)
    dm.trainer = Trainer(accelerator="cpu", devices=1, logger=False, default_root_dir=tmp_path)
    dm.trainer.fit_loop.epoch_progress.current.processed = 4  # as restored by a resumed fit
    loader = dm.train_dataloader()
    assert isinstance(loader.sampler, EpochSampler) and loader.sampler.epoch == 4
    assert (loader.sampler.num_replicas, loader.sampler.rank) == (1, 0)
    assert loader.pin_memory is False and dm.val_dataloader().pin_memory is False


def test_pin_memory_only_for_cuda() -> None:
    assert pin_memory_for(torch.device("cuda", 1)) is True
    assert pin_memory_for(torch.device("cpu")) is False
    assert pin_memory_for(torch.device("meta")) is False
    assert pin_memory_for(None) is False


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_loaders_pin_memory_on_cuda(tmp_path) -> None:
    dm = _dm(0)
    dm.trainer = Trainer(accelerator="gpu", devices=1, logger=False, default_root_dir=tmp_path)
    assert dm.train_dataloader().pin_memory and dm.test_dataloader().pin_memory
    x, _ = next(iter(dm.train_dataloader()))
    assert x.is_pinned()


def test_workers_start_from_the_fork_server() -> None:
    """Workers are never forked from a process whose other threads may hold a lock."""
    assert worker_start_method(0) is None
    dm = _dm(2)
    for loader in (dm.train_dataloader(), dm.val_dataloader(), dm.test_dataloader()):
        assert loader.multiprocessing_context.get_start_method() == "forkserver"
    assert _dm(0).train_dataloader().multiprocessing_context is None
