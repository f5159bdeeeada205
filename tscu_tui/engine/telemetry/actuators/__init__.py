"""Frequency actuators: the knobs that lower joules per token, not only watts.

One interface (`base.FrequencyActuator`: a level in [0, 1] between the knob's
floor and its uncapped setting, `level()`, `set_level()`, `restore()`,
`speed_ratio()`), one implementation per platform knob: NVIDIA locked SM clocks
(`nvidia_clocks`), Linux cpufreq / intel_pstate / EPP (`cpufreq`) and the RAPL
power limit (`rapl_limit`), Apple Low Power Mode (`apple_lowpower`); and the simulated plant's clock
(`simulated`: no journal, nothing real changes). `pick`
probes what this machine allows and says why not; `journal` records every
original on disk before the change, `guard` restores at exit and on signals,
`recover` restores after a SIGKILL at the next start.

Hardware is reached only through parameters (a sysfs root, an NVML module and
handle, a command runner), so tests point them at stand-ins. May import the
shared vocabulary (`fileio`), `telemetry.nvidia` and `telemetry.rapl` (their
boundaries), and the standard library; pynvml and psutil only inside functions.
Nothing here prompts for a password.
"""
