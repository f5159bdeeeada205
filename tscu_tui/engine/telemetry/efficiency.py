"""Information per joule (TSCU.md section 2, Efficiency).

Information gained is what the model learned about the data, measured on
held-out data at evaluations: `bits = N * (heldout_BPT_before - heldout_BPT_after)`,
N the training-set tokens (the N of ParamBPT: `scu.tokens_n`, else the train
split's tokens; one N everywhere). `eta = bits / J` over the last interval
(marginal) and since the start (cumulative); also tokens/J and J/token.

The MDL view is another quantity: the data bits minus the change in the
adapter's own description length, `N * ParamBPT`. It is reported beside eta
only when the penalty is on (with it off, ParamBPT grows without bound as the
adapter moves away from its prior, so the difference turns negative while the
model is still learning; it was this page's old "TotalBPT" definition, and it
showed -348 bits/J on a demo whose held-out BPT fell at every evaluation). A
negative MDL figure means the adapter now costs more bits than it saves; it is
not a sign of diminishing returns.

Landauer efficiency `eta * k_B * T * ln 2` is the fraction of the physical
limit reached: erasing one bit at temperature T costs at least k_B T ln 2
joules, so 1.0 would be a perfect machine (real ones sit near 1e-20..1e-15).

Diminishing returns: marginal eta below `target_bits_per_joule` at
`patience` consecutive evaluations. For scale: N = 1e6 tokens improving by
0.01 bit/token over an interval that burns 20 W for 10 minutes (12 kJ) is
about 0.8 bits/J, so the 1.0 bits/J default flags a run whose eval-to-eval
gain has shrunk to roughly that level. A held-out BPT that rises (overfitting)
gives negative bits: below any target.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

BOLTZMANN_J_PER_K = 1.380649e-23
DEFAULT_TEMP_K = 300.0
CELSIUS_TO_KELVIN = 273.15

DEFINITION = ("information = N x drop in held-out data bits per token (N = training-set "
              "tokens, the N of ParamBPT), per joule of measured energy")
MDL_DEFINITION = ("MDL view: held-out data bits minus the change in the adapter's parameter "
                  "bits (N x ParamBPT), per joule; reported only with the penalty on")


def landauer_efficiency(bits_per_joule: float, temp_c: float | None = None) -> float:
    """`eta * k_B * T * ln 2`, T in kelvin; 300 K when the chip temperature is unknown."""
    temp_k = DEFAULT_TEMP_K if temp_c is None else temp_c + CELSIUS_TO_KELVIN
    return bits_per_joule * BOLTZMANN_J_PER_K * temp_k * math.log(2)


def mdl_meaning(mdl_bits: float | None) -> str | None:
    """The MDL view's sign, in words (None when it is not reported)."""
    if mdl_bits is None:
        return None
    if mdl_bits < 0:
        return "the adapter now costs more bits than it saves"
    return "the adapter saves more bits than it costs"


@dataclass(frozen=True)
class EfficiencyReading:
    bits_marginal: float  # N x held-out BPT drop since the last evaluation
    joules_marginal: float
    eta_marginal_bits_per_j: float | None
    bits_cumulative: float  # ... since the run's first evaluation
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
    # The MDL view (data bits - change in N x ParamBPT); None when the penalty is off.
    mdl_bits_marginal: float | None = None
    mdl_bits_cumulative: float | None = None
    mdl_eta_marginal_bits_per_j: float | None = None
    mdl_eta_cumulative_bits_per_j: float | None = None


@dataclass
class EfficiencyState:
    """What a checkpoint keeps, so a resumed run measures from the same baseline."""

    heldout_bpt_start: float
    heldout_bpt_last: float
    param_bpt_start: float
    param_bpt_last: float
    energy_j_start: float
    energy_j_last: float
    tokens_start: int
    streak: int = 0
    triggered: bool = False


class EfficiencyTracker:
    """Tracks information per joule between evaluations; pure, fed by the trainer."""

    def __init__(self, n_tokens: int, target_bits_per_joule: float, patience: int,
                 heldout_bpt_start: float, param_bpt_start: float = 0.0,
                 energy_j_start: float = 0.0, tokens_start: int = 0,
                 mdl: bool = False) -> None:
        if n_tokens <= 0 or patience < 1:
            raise ValueError("n_tokens must be > 0 and patience >= 1")
        self.n_tokens = n_tokens
        self.target = target_bits_per_joule
        self.patience = patience
        self.mdl = mdl
        self.state = EfficiencyState(
            heldout_bpt_start=heldout_bpt_start, heldout_bpt_last=heldout_bpt_start,
            param_bpt_start=param_bpt_start, param_bpt_last=param_bpt_start,
            energy_j_start=energy_j_start, energy_j_last=energy_j_start,
            tokens_start=tokens_start)

    def update(self, heldout_bpt: float, energy_j: float, tokens_processed: int,
               temp_c: float | None = None, param_bpt: float = 0.0) -> EfficiencyReading:
        """One evaluation: `energy_j` and `tokens_processed` are cumulative counters,
        `param_bpt` the adapter's ParamBPT now (used by the MDL view only)."""
        s, n = self.state, self.n_tokens
        bits = n * (s.heldout_bpt_last - heldout_bpt)
        bits_total = n * (s.heldout_bpt_start - heldout_bpt)
        joules = energy_j - s.energy_j_last
        joules_total = energy_j - s.energy_j_start
        tokens = tokens_processed - s.tokens_start
        eta = _per_joule(bits, joules)
        eta_total = _per_joule(bits_total, joules_total)
        if eta is not None:  # an interval without energy data says nothing either way
            s.streak = s.streak + 1 if eta < self.target else 0
        newly = s.streak >= self.patience and not s.triggered
        s.triggered = s.triggered or newly
        mdl_bits = mdl_total = None
        if self.mdl:
            mdl_bits = bits - n * (param_bpt - s.param_bpt_last)
            mdl_total = bits_total - n * (param_bpt - s.param_bpt_start)
        s.heldout_bpt_last, s.param_bpt_last, s.energy_j_last = heldout_bpt, param_bpt, energy_j
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
            temp_k=temp_k, below_target_streak=s.streak,
            diminishing_returns=s.streak >= self.patience, newly_diminishing=newly,
            mdl_bits_marginal=mdl_bits, mdl_bits_cumulative=mdl_total,
            mdl_eta_marginal_bits_per_j=None if mdl_bits is None else _per_joule(mdl_bits,
                                                                                 joules),
            mdl_eta_cumulative_bits_per_j=(None if mdl_total is None
                                           else _per_joule(mdl_total, joules_total)))

    def state_dict(self) -> dict[str, float | int | bool]:
        return asdict(self.state)

    def load_state_dict(self, state: dict[str, float | int | bool]) -> None:
        """The baseline of the run's first session (N and the target come from the
        current config: they scale and judge the bits, the baseline is in BPT)."""
        self.state = EfficiencyState(**state)  # type: ignore[arg-type]


def event_fields(reading: EfficiencyReading | None) -> dict[str, float | None]:
    """The reading's share of an EvalEvent (every field None without a reading)."""
    r = reading
    return {"eta_marginal_bits_per_j": r and r.eta_marginal_bits_per_j,
            "eta_cumulative_bits_per_j": r and r.eta_cumulative_bits_per_j,
            "tokens_per_j": r and r.tokens_per_j,
            "landauer_efficiency": r and r.landauer_cumulative,
            "bits_marginal": None if r is None else r.bits_marginal,
            "bits_cumulative": None if r is None else r.bits_cumulative,
            "mdl_bits_cumulative": r and r.mdl_bits_cumulative,
            "mdl_eta_marginal_bits_per_j": r and r.mdl_eta_marginal_bits_per_j,
            "mdl_eta_cumulative_bits_per_j": r and r.mdl_eta_cumulative_bits_per_j}


def _per_joule(bits: float, joules: float) -> float | None:
    return bits / joules if joules > 0 else None
