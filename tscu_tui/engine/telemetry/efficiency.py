"""Information per joule (TSCU.md section 2, Efficiency).

Information gained is the drop in the training set's description length:
`bits = N * (TotalBPT_before - TotalBPT_after)`, with N the training-set
tokens and TotalBPT measured on held-out data at eval points. `eta = bits / J`
over the last interval (marginal) and since the start (cumulative).

Landauer efficiency `eta * k_B * T * ln 2` is the fraction of the physical
limit reached: erasing one bit at temperature T costs at least k_B T ln 2
joules, so 1.0 would be a perfect machine (real ones sit near 1e-20..1e-15).

Diminishing returns: marginal eta below `target_bits_per_joule` at
`patience` consecutive evaluations. For scale: N = 1e6 tokens improving by
0.01 bit/token over an interval that burns 20 W for 10 minutes (12 kJ) is
about 0.8 bits/J, so the 1.0 bits/J default flags a run whose eval-to-eval
gain has shrunk to roughly that level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

BOLTZMANN_J_PER_K = 1.380649e-23
DEFAULT_TEMP_K = 300.0
CELSIUS_TO_KELVIN = 273.15


def landauer_efficiency(bits_per_joule: float, temp_c: float | None = None) -> float:
    """`eta * k_B * T * ln 2`, T in kelvin; 300 K when the chip temperature is unknown."""
    temp_k = DEFAULT_TEMP_K if temp_c is None else temp_c + CELSIUS_TO_KELVIN
    return bits_per_joule * BOLTZMANN_J_PER_K * temp_k * math.log(2)


@dataclass(frozen=True)
class EfficiencyReading:
    bits_marginal: float
    joules_marginal: float
    eta_marginal_bits_per_j: float | None
    bits_cumulative: float
    joules_cumulative: float
    eta_cumulative_bits_per_j: float | None
    tokens_per_j: float | None
    j_per_token: float | None
    landauer_marginal: float | None
    landauer_cumulative: float | None
    temp_k: float
    below_target_streak: int
    diminishing_returns: bool  # streak has reached patience
    newly_diminishing: bool  # ... at this evaluation, so the event fires once


class EfficiencyTracker:
    """Tracks bits per joule between eval points; pure, fed by the trainer."""

    def __init__(self, n_tokens: int, target_bits_per_joule: float, patience: int,
                 total_bpt_start: float, energy_j_start: float = 0.0,
                 tokens_start: int = 0) -> None:
        if n_tokens <= 0 or patience < 1:
            raise ValueError("n_tokens must be > 0 and patience >= 1")
        self.n_tokens = n_tokens
        self.target = target_bits_per_joule
        self.patience = patience
        self.bpt_start = self.bpt_last = total_bpt_start
        self.energy_start = self.energy_last = energy_j_start
        self.tokens_start = tokens_start
        self.streak = 0
        self.triggered = False

    def update(self, total_bpt: float, energy_j: float, tokens_processed: int,
               temp_c: float | None = None) -> EfficiencyReading:
        """One eval point: `energy_j` and `tokens_processed` are cumulative counters."""
        bits = self.n_tokens * (self.bpt_last - total_bpt)
        joules = energy_j - self.energy_last
        bits_total = self.n_tokens * (self.bpt_start - total_bpt)
        joules_total = energy_j - self.energy_start
        tokens = tokens_processed - self.tokens_start
        eta = bits / joules if joules > 0 else None
        eta_total = bits_total / joules_total if joules_total > 0 else None
        if eta is not None:  # an interval without energy data says nothing either way
            self.streak = self.streak + 1 if eta < self.target else 0
        newly = self.streak >= self.patience and not self.triggered
        self.triggered = self.triggered or newly
        self.bpt_last, self.energy_last = total_bpt, energy_j
        temp_k = DEFAULT_TEMP_K if temp_c is None else temp_c + CELSIUS_TO_KELVIN
        return EfficiencyReading(
            bits_marginal=bits, joules_marginal=joules, eta_marginal_bits_per_j=eta,
            bits_cumulative=bits_total, joules_cumulative=joules_total,
            eta_cumulative_bits_per_j=eta_total,
            tokens_per_j=tokens / joules_total if joules_total > 0 else None,
            j_per_token=joules_total / tokens if tokens > 0 else None,
            landauer_marginal=None if eta is None else landauer_efficiency(eta, temp_c),
            landauer_cumulative=(None if eta_total is None
                                 else landauer_efficiency(eta_total, temp_c)),
            temp_k=temp_k, below_target_streak=self.streak,
            diminishing_returns=self.streak >= self.patience, newly_diminishing=newly)
