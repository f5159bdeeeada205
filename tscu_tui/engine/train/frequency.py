"""The clock knob in the training loop: `tscu.frequency_control` and `tscu.objective`.

`resolve_actuator` picks the knob: "off" none (duty cycling alone, as
before); "simulated" the simulated plant's clock, which changes nothing real
(only with `telemetry.source = "simulated"`); "auto" the first usable knob
`actuators.pick.probe` finds for the device (none under simulated telemetry: a
real knob would change the machine while the plant measured nothing of it; the
simulated clock is used only when named); a knob's name that one only. A knob
that cannot be used is said in one line, and the run goes on with duty cycling.

Each governor decision becomes a level and a duty share (`FrequencyPolicy`);
under `objective = "energy"` the run first profiles levels (`EnergyProfile`,
governor held) and then keeps the chosen level as a ceiling the budget may
still lower. On the simulated plant a lower clock makes a step take longer:
`stretch_s` is that extra compute time, which the trainer spends busy, so the
plant's throughput falls with its clock as the model says (a real knob slows the
real step by itself: nothing is added).
"""

from __future__ import annotations

from collections.abc import Callable

from tscu_tui.engine.config import Config
from tscu_tui.engine.telemetry.actuators.base import FrequencyActuator
from tscu_tui.engine.telemetry.actuators.simulated import SimulatedFrequency
from tscu_tui.engine.telemetry.base import Source
from tscu_tui.engine.telemetry.frequency_policy import FrequencyDecision, FrequencyPolicy
from tscu_tui.engine.telemetry.plant import DEFAULT_MODEL
from tscu_tui.engine.telemetry.simulated import SimulatedSource
from tscu_tui.engine.train.energy_profile import PROFILE_LEVELS, PROFILE_SPEEDS, EnergyProfile


def resolve_actuator(config: Config, source: Source,
                     probe: Callable[[Source | None], list[FrequencyActuator]] | None = None
                     ) -> tuple[FrequencyActuator | None, str]:
    """The knob to drive and a line saying what was chosen (or why none)."""
    wanted = config.tscu.frequency_control
    if wanted == "off":
        return None, "frequency control off (tscu.frequency_control): duty cycling only"
    simulated = isinstance(source, SimulatedSource)
    if wanted == "auto" and simulated:  # no real knob: the plant would not see it
        return None, ('frequency control: the simulated plant\'s clock is used only when '
                      'named (tscu.frequency_control = "simulated"): duty cycling only')
    if wanted == "simulated":
        if not simulated:
            return None, ('tscu.frequency_control = "simulated" needs telemetry.source = '
                          '"simulated": duty cycling only')
        knob = SimulatedFrequency()
        source.speed = knob.speed
        return knob, f"frequency first: {knob.describe()}"
    usable = (probe or _probe)(source)
    if wanted != "auto":
        usable = [a for a in usable if a.name == wanted]
    if not usable:
        what = "no usable clock knob here" if wanted == "auto" else f"{wanted} is not usable here"
        return None, f"{what} (see `tscu telemetry`): duty cycling only"
    return usable[0], f"frequency first: {usable[0].describe()}"


def _probe(source: Source | None) -> list[FrequencyActuator]:
    from tscu_tui.engine.telemetry.actuators.pick import probe

    return probe(source if source is not None and source.name == "nvidia" else None).usable


class FrequencyControl:
    """One knob, the policy that maps the governor onto it, and the energy profile."""

    def __init__(self, config: Config, actuator: FrequencyActuator) -> None:
        self.actuator = actuator
        self.policy = FrequencyPolicy(actuator)
        self.profile: EnergyProfile | None = None
        if config.tscu.objective == "energy":
            self.profile = EnergyProfile(budget_w=config.tscu.power_budget_watts,
                                         max_slowdown=config.tscu.max_slowdown,
                                         levels=self._profile_levels())
        self.simulated = isinstance(actuator, SimulatedFrequency)
        self.decision = FrequencyDecision(1.0, actuator.speed_ratio(1.0), 1.0)
        self._announced = False

    def _profile_levels(self) -> tuple[float, ...]:
        """Distinct settings the knob really takes, uncapped first."""
        p = self.policy
        if self.actuator.speed_ratio(1.0) is not None:
            wanted = [p.level_for_speed(s) for s in PROFILE_SPEEDS]
        else:
            wanted = [p.snap(level) for level in PROFILE_LEVELS]
        return tuple(sorted(set(wanted), reverse=True))

    @property
    def profiling(self) -> bool:
        return self.profile is not None and not self.profile.done

    def decide(self, demand: float, emergency: bool) -> tuple[FrequencyDecision, str | None]:
        """Level and duty for the governor's demand; the knob set if the level changed.
        Returns the decision and a line to log: the first change, or a refusal."""
        if self.profiling and not emergency:
            level = self.profile.level()  # type: ignore[union-attr]
            decision = FrequencyDecision(level, self.actuator.speed_ratio(level), 1.0)
        else:
            ceiling = self.profile.level() if self.profile is not None else 1.0
            decision = self.policy.decide(demand, ceiling)
        change = self.policy.apply(decision.level)
        message = None
        if change is not None and not change.applied:  # refused: hold what is set
            level = self.policy.applied
            ratio = self.policy.ratio(level)
            duty = 1.0 if ratio <= demand else min(max(demand / ratio, 0.0), 1.0)
            decision = FrequencyDecision(level, self.actuator.speed_ratio(level), duty)
            message = change.message
        elif change is not None and not self._announced:  # the first change, once
            self._announced = True
            message = change.message
        self.decision = decision
        return decision, message

    def observe(self, t_s: float, energy_j: float | None, tokens: int) -> str | None:
        """After a step while profiling; a line when the choice is made."""
        if not self.profiling:
            return None
        assert self.profile is not None
        if self.profile.observe(t_s, energy_j, tokens, self.decision.speed):
            chosen = self.profile.chosen
            if chosen is None:
                return "energy profile: nothing measured; the budget alone sets the clock"
            speed = f"{chosen.speed:.2f} f_max" if chosen.speed is not None else (
                f"level {chosen.level:.2f}")
            return (f"energy profile: keeping {self.actuator.name} at {speed} "
                    f"({chosen.joules_per_token:.4g} J/token, {chosen.tokens_per_s:.4g} "
                    f"tokens/s, {chosen.power_w:.3g} W; {len(self.profile.points)} settings "
                    f"measured)")
        return None

    def stretch_s(self, compute_s: float) -> float:
        """Extra busy seconds a step takes at the simulated plant's lower clock."""
        speed = self.decision.speed
        if not self.simulated or speed is None or speed >= 1.0:
            return 0.0
        return max(compute_s, 0.0) * (1.0 / DEFAULT_MODEL.throughput(speed) - 1.0)

    def label(self) -> str:
        text = self.policy.label()
        return f"{text} (simulated)" if self.simulated and "simulated" not in text else text

    def restore(self) -> str | None:
        change = self.actuator.restore()
        self.policy.applied = 1.0
        return None if change is None else change.message

    def summary(self) -> dict[str, object]:
        out: dict[str, object] = {"actuator": self.actuator.name,
                                  "simulated": self.simulated,
                                  "level": self.policy.applied,
                                  "speed": self.actuator.speed_ratio(self.policy.applied)}
        if self.profile is not None:
            out["energy_profile"] = self.profile.summary()
        return out
