"""Deterministic, resumable batch order over packed training blocks, and the blocks of
a prepared split as batches (tokens, loss weights, document starts)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tscu_tui.engine.data import PreparedDataset
from tscu_tui.engine.data.encoding import START, TRAINED
from tscu_tui.engine.models.runtime import mx


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


@dataclass(frozen=True)
class Batch:
    """A micro-batch of blocks and what training does with each position.

    `weights` (b, L-1): 1 where the target (the next token) carries loss;
    `starts` (b, L-1): where each input position's document starts, for the
    attention mask (models/document_mask.py). Both None for a dataset prepared
    before per-token flags existed: every target trains, attention is causal.
    `denominator`: what the summed loss is divided by; None = this batch's own
    count of trained targets. A rank of a distributed run divides by the global
    batch's count over the number of ranks, so that the ranks' averaged gradients
    are those of the global batch's mean, however the targets fall."""

    tokens: mx.array
    weights: mx.array | None = None
    starts: mx.array | None = None
    denominator: mx.array | None = None

    @property
    def arrays(self) -> tuple[mx.array | None, ...]:
        """The arrays, for a compiled step (`Batch(*arrays)` inside it)."""
        return self.tokens, self.weights, self.starts, self.denominator

    @property
    def targets(self) -> int:
        """Targets that carry loss (a host sync when weights exist)."""
        if self.weights is None:
            return self.tokens.shape[0] * (self.tokens.shape[1] - 1)
        return int(self.weights.sum().item())


def make_batch(tokens: np.ndarray, flags: np.ndarray | None,
               denominator: float | None = None) -> Batch:
    """A Batch from (b, L) blocks of a prepared split and their flags (encoding.py)."""
    array = mx.array(np.asarray(tokens, dtype=np.int32))
    share = None if denominator is None else mx.array(float(denominator), dtype=mx.float32)
    if flags is None:
        return Batch(array, denominator=share)
    flags = np.asarray(flags)
    weights = (flags[:, 1:] & TRAINED).astype(np.float32)
    inputs = flags[:, :-1]
    positions = np.where(inputs & START, np.arange(inputs.shape[1]), 0)
    starts = np.maximum.accumulate(positions, axis=1).astype(np.int32)
    return Batch(array, mx.array(weights), mx.array(starts), share)


class SplitBlocks:
    """One split of a prepared dataset as batches: evaluating "test" is the same call as
    evaluating "validation"."""

    def __init__(self, data: PreparedDataset, split: str) -> None:
        self.split = split
        self.blocks = data.blocks(split)
        self.flags = data.flag_blocks(split)

    def __len__(self) -> int:
        return len(self.blocks)

    def batch(self, rows: np.ndarray | slice, denominator: float | None = None) -> Batch:
        return make_batch(self.blocks[rows], None if self.flags is None else self.flags[rows],
                          denominator)

    def trained(self, rows: np.ndarray | slice) -> int:
        """Targets that carry loss in these blocks."""
        if self.flags is None:
            return len(self.blocks[rows]) * (self.blocks.shape[1] - 1)
        return int(np.count_nonzero(np.asarray(self.flags[rows])[:, 1:] & TRAINED))
