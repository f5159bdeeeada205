"""A model of how a chip's power and speed follow its clock: the simulated plant's
frequency law, and the shape the frequency-first governor predicts power with.

    busy power  P(f) = P_s + k f^3              for f >= f_v (the voltage floor)
                P(f) = P_s + k f_v^2 f          below it (voltage can fall no further,
                                                 so dynamic power falls only with f)
    throughput  R(f) = 1 / ((1 - m) / f + m)    (x the full-clock rate; m is the share
                                                 of a step bound by memory, which a
                                                 lower clock does not slow; m = 0: R = f)

f is the clock as a share of the full clock. With m = 0 the energy per token,
P(f) / f, is least at f* = (P_s / 2k)^(1/3) (TSCU.md section 2).

The constants are a model, not a measurement. P_s = 16 W and k = 24 W (40 W flat
out, 5 W idle: the simulated plant's long-standing numbers) put 40% of full power
in the static term, which reproduces the published shape: about -13.5% energy per
token at f* ~ 0.69 (McDonald et al. 2022 measured -13.7% energy on a V100 capped at
150 of 250 W), and a few percent less energy for a few percent more time near the
top of the range (Zeus, NSDI'23, GPU frequency / power-limit sweeps). Nothing here
was measured on this machine.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class FrequencyModel:
    static_w: float = 16.0  # P_s
    dynamic_w: float = 24.0  # k: the f^3 term at the full clock
    voltage_floor: float = 0.5  # f_v
    idle_w: float = 5.0  # nothing computing
    memory_share: float = 0.0  # m

    @property
    def full_w(self) -> float:
        return self.busy_power(1.0)

    def busy_power(self, f: float) -> float:
        """Watts while computing at clock share `f`."""
        f = min(max(f, 1e-3), 1.0)
        if f >= self.voltage_floor:
            return self.static_w + self.dynamic_w * f ** 3
        return self.static_w + self.dynamic_w * self.voltage_floor ** 2 * f

    def power_ratio(self, f: float) -> float:
        """Busy power at `f` as a share of busy power at the full clock."""
        return self.busy_power(f) / self.full_w

    def throughput(self, f: float) -> float:
        """Work per second at `f` as a share of the full clock's."""
        f = min(max(f, 1e-3), 1.0)
        m = min(max(self.memory_share, 0.0), 1.0)
        return 1.0 / ((1.0 - m) / f + m)

    def energy_ratio(self, f: float) -> float:
        """Energy per unit of work at `f` (busy, no idling) as a share of the full clock's."""
        return self.power_ratio(f) / self.throughput(f)

    def optimal_clock(self) -> float:
        """f* = (P_s / 2k)^(1/3), the least energy per unit of work (m = 0), at or above f_v."""
        return max(min((self.static_w / (2.0 * self.dynamic_w)) ** (1.0 / 3.0), 1.0),
                   self.voltage_floor)


#: the simulated plant's law, and the shape assumed for a real knob until measured
DEFAULT_MODEL = FrequencyModel()
