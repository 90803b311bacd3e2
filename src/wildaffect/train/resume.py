"""Exact resume: a clip order that is a function of (seed, epoch) only, and a callback that
stores, in every checkpoint, how far into the epoch the run was and the RNG states.

Lightning restores the weights, optimiser, LR scheduler, loop counters and callback states
from ``ckpt_path``, but not the data order of a plain shuffling ``DataLoader`` (its
generator has moved on) nor the global RNGs (dropout masks, modality dropout). With
:class:`EpochSampler` the permutation of epoch ``e`` is ``randperm(n, seed + e)`` (the
``DistributedSampler`` recipe with one replica), and :class:`ResumeState` tells it how many
clips of the interrupted epoch were already consumed, so the resumed run sees exactly the
batches the uninterrupted one would. ``tests/test_train.py`` checks the next-step loss and
the final weights against an uninterrupted run.

Under DDP Lightning replaces the sampler with its own ``DistributedSampler`` (also a function
of seed and epoch): resume there is exact at epoch boundaries only.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Sampler


class EpochSampler(Sampler[int]):
    """Indices ``0..n-1`` shuffled by ``seed + epoch`` (or drawn with replacement by
    ``weights`` for class-balanced training); ``skip_once`` drops a prefix of one epoch.

    With ``groups`` (a group id per index) and ``batch_size``, every run of ``batch_size``
    consecutive indices comes from one group (batches of similar clip lengths): each group's
    shuffled indices are cut into batches, its last batch filled up with the group's first
    indices, and the batches shuffled. A group smaller than a batch first joins its
    neighbour (the next smaller id, else the next larger), so filling never repeats a clip
    more than once an epoch; only when all indices together are fewer than a batch is there
    one short batch. The order is still a function of (seed, epoch) only.
    """

    def __init__(
        self, n: int, seed: int = 0, weights: np.ndarray | None = None,
        groups: np.ndarray | None = None, batch_size: int = 1,
    ) -> None:
        self.n, self.seed, self.epoch = n, seed, 0
        self.weights = None if weights is None else torch.as_tensor(weights, dtype=torch.double)
        if groups is not None and weights is not None:
            raise ValueError("groups and weights cannot be combined")
        if groups is not None and len(groups) != n:
            raise ValueError(f"groups has {len(groups)} entries for {n} indices")
        self.batch_size = batch_size
        self.groups = None if groups is None else merge_small_groups(groups, batch_size)
        self._skip: tuple[int, int] | None = None  # (epoch, indices to drop)

    def set_epoch(self, epoch: int) -> None:
        """Called by Lightning before every epoch."""
        self.epoch = epoch

    def skip_once(self, epoch: int, n_indices: int) -> None:
        self._skip = (epoch, n_indices)

    def order(self, epoch: int) -> list[int]:
        """The full index order of ``epoch``."""
        generator = torch.Generator().manual_seed(self.seed + epoch)
        if self.weights is not None:
            return torch.multinomial(self.weights, self.n, True, generator=generator).tolist()
        shuffled = torch.randperm(self.n, generator=generator).tolist()
        if self.groups is None:
            return shuffled
        batches: list[list[int]] = []
        for group in sorted(set(self.groups.tolist())):
            members = [i for i in shuffled if self.groups[i] == group]
            for start in range(0, len(members), self.batch_size):
                batch = members[start:start + self.batch_size]
                if len(members) >= self.batch_size:  # fill the last one up
                    batch += members[:self.batch_size - len(batch)]
                batches.append(batch)
        batch_order = torch.randperm(len(batches), generator=generator).tolist()
        return [i for b in batch_order for i in batches[b]]

    def __iter__(self) -> Iterator[int]:
        indices = self.order(self.epoch)
        if self._skip is not None and self._skip[0] == self.epoch:
            indices = indices[self._skip[1]:]
        self._skip = None
        yield from indices

    def __len__(self) -> int:
        # The full epoch even when resuming mid-way: Lightning counts the skipped batches as
        # done (its batch counter is restored) and the LR schedule depends on this length.
        if self.groups is None:
            return self.n
        sizes = np.unique(self.groups, return_counts=True)[1]
        if len(sizes) == 1 and sizes[0] < self.batch_size:
            return int(sizes[0])
        return int(sum(-(-size // self.batch_size) * self.batch_size for size in sizes))


def merge_small_groups(groups: np.ndarray, batch_size: int) -> np.ndarray:
    """``groups`` with every group of fewer than ``batch_size`` members merged into its
    neighbour (next smaller id, else next larger) until none is left or one group remains."""
    merged = np.asarray(groups).copy()
    while True:
        ids, sizes = np.unique(merged, return_counts=True)
        small = np.nonzero(sizes < batch_size)[0]
        if len(ids) == 1 or not len(small):
            return merged
        k = small[0]
        merged[merged == ids[k]] = ids[k - 1] if k > 0 else ids[k + 1]


def rng_states() -> dict[str, Any]:
    """The global RNG states as tensors and plain containers (loadable with weights_only)."""
    kind, key, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "numpy": (kind, torch.from_numpy(key.astype(np.int64)), pos, has_gauss, cached),
            "python": random.getstate()}


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, key, pos, has_gauss, cached = states["numpy"]
    np.random.set_state((kind, key.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(states["python"])


class ResumeState(L.Callback):
    """Counts the batches of the current epoch and saves them with the RNG states; on resume
    makes ``sampler`` skip what was consumed and restores the RNGs just before training."""

    def __init__(self, sampler: EpochSampler, batch_size: int, batches_per_epoch: int,
                 dataset: Any = None) -> None:
        self.sampler, self.batch_size = sampler, batch_size
        self.batches_per_epoch = batches_per_epoch
        self.dataset = dataset  # its set_epoch (frame skipping draws) follows the resumed epoch
        self.epoch, self.batches_done = 0, 0
        self._restored_rng: dict[str, Any] | None = None

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch != self.epoch:
            self.epoch, self.batches_done = trainer.current_epoch, 0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.epoch = trainer.current_epoch
        self.batches_done += 1

    def state_dict(self) -> dict[str, Any]:
        # Called while a checkpoint is written: after this batch's counting, before the next.
        return {"epoch": self.epoch, "batches_done": self.batches_done, "rng": rng_states()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        # Lightning restores callbacks before it iterates the train loader for the first time.
        self.epoch, self.batches_done = state_dict["epoch"], state_dict["batches_done"]
        if self.batches_done >= self.batches_per_epoch:
            # Saved after an epoch's last batch: the run goes on with the next epoch. Set it
            # here, not only when Lightning does: a loader worker may draw indices first.
            self.epoch, self.batches_done = self.epoch + 1, 0
        self.sampler.set_epoch(self.epoch)
        if hasattr(self.dataset, "set_epoch"):
            self.dataset.set_epoch(self.epoch)
        self.sampler.skip_once(self.epoch, self.batches_done * self.batch_size)
        self._restored_rng = state_dict.get("rng")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._restored_rng is not None:
            set_rng_states(self._restored_rng)
            self._restored_rng = None
