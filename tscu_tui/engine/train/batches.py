"""Deterministic, resumable batch order over packed training blocks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class SamplerState:
    epoch: int = 0
    position: int = 0  # blocks of this epoch's permutation already served


class BlockSampler:
    """Serves micro-batches of blocks in a fresh seeded permutation each epoch.

    The state is two integers, so a checkpoint resumes on exactly the next batch.
    """

    def __init__(self, n_blocks: int, batch_size: int, seed: int,
                 state: SamplerState | None = None) -> None:
        if n_blocks < batch_size:
            raise ValueError(f"{n_blocks} training blocks cannot fill a batch of {batch_size}")
        self.n_blocks, self.batch_size, self.seed = n_blocks, batch_size, seed
        self.state = state or SamplerState()
        self._order = self._permutation(self.state.epoch)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_blocks)

    def next_indices(self) -> np.ndarray:
        if self.state.position + self.batch_size > self.n_blocks:  # drop the ragged tail
            self.state = SamplerState(self.state.epoch + 1, 0)
            self._order = self._permutation(self.state.epoch)
        start = self.state.position
        self.state.position += self.batch_size
        return np.sort(self._order[start:start + self.batch_size])

    @property
    def epoch_progress(self) -> float:
        return self.state.epoch + self.state.position / self.n_blocks
