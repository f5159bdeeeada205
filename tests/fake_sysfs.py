"""Fake Linux sysfs trees for the actuator tests: the hardware boundary we lack (this
machine exposes no cpufreq policy, no intel_pstate, no powercap). Only the files and
values the kernel would show; the actuators under test are the real ones."""

from __future__ import annotations

from pathlib import Path


def fake_cpu_tree(root: Path, ranges_khz: list[tuple[int, int]] | None = None,
                  available: list[int] | None = None, epp: bool = True,
                  intel_pstate: bool = True) -> Path:
    """/sys/devices/system/cpu with one cpufreq policy per (min, max) range (a hybrid
    CPU when they differ), each capped at its max, EPP at "balance_performance"."""
    ranges_khz = ranges_khz or [(800_000, 3_000_000), (800_000, 2_000_000)]
    for i, (low, high) in enumerate(ranges_khz):
        policy = root / "cpufreq" / f"policy{i}"
        policy.mkdir(parents=True)
        files = {"cpuinfo_min_freq": low, "cpuinfo_max_freq": high, "scaling_min_freq": low,
                 "scaling_max_freq": high, "scaling_driver": "intel_pstate"}
        if available:
            files["scaling_available_frequencies"] = " ".join(str(f) for f in available)
        if epp:
            files["energy_performance_preference"] = "balance_performance"
            files["energy_performance_available_preferences"] = (
                "default performance balance_performance balance_power power")
        for name, value in files.items():
            (policy / name).write_text(f"{value}\n")
    if intel_pstate:
        folder = root / "intel_pstate"
        folder.mkdir()
        for name, value in {"status": "active", "max_perf_pct": 100, "min_perf_pct": 20,
                            "no_turbo": 0}.items():
            (folder / name).write_text(f"{value}\n")
    return root


def fake_powercap_tree(root: Path, packages: int = 1, limit_uw: int = 65_000_000,
                       max_uw: int = 65_000_000) -> Path:
    """/sys/class/powercap with RAPL package domains (and a nested core domain)."""
    for i in range(packages):
        domain = root / f"intel-rapl:{i}"
        (domain / f"intel-rapl:{i}:0").mkdir(parents=True)
        for name, value in {"name": f"package-{i}", "enabled": 1, "energy_uj": 123,
                            "max_energy_range_uj": 262143328850,
                            "constraint_0_name": "long_term",
                            "constraint_0_power_limit_uw": limit_uw,
                            "constraint_0_max_power_uw": max_uw}.items():
            (domain / name).write_text(f"{value}\n")
    return root


def texts(root: Path, name: str) -> dict[str, str]:
    """Every file called `name` under root, with its content."""
    return {str(p.relative_to(root)): p.read_text().strip() for p in sorted(root.rglob(name))}
