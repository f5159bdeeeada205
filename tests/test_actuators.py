"""Frequency actuators at the hardware boundary. This machine has no writable clock knob
(no cpufreq policy, no intel_pstate, no powercap, no NVIDIA GPU, not a Mac), so the
boundaries are stand-ins named as such: a fake sysfs tree the actuators are pointed at,
a fake NVML with a power-vs-clock curve, a fake `sudo`/`pmset` runner. The actuators,
the journal, the guard and the recovery are the real ones; the signal, crash and
SIGKILL cases run in real child processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from fake_sysfs import fake_cpu_tree, fake_powercap_tree, texts
from runs import tiny_config, train

from tscu_tui.engine.events import RunFinished
from tscu_tui.engine.telemetry.actuators import guard, journal, sysfs
from tscu_tui.engine.telemetry.actuators.apple_lowpower import SUDOERS_LINE, AppleLowPowerMode
from tscu_tui.engine.telemetry.actuators.base import ActuatorUnavailable
from tscu_tui.engine.telemetry.actuators.cpufreq import (
    CpufreqMaxFreq,
    EnergyPerformancePreference,
    IntelPstateMaxPerf,
)
from tscu_tui.engine.telemetry.actuators.nvidia_clocks import NvidiaLockedClocks
from tscu_tui.engine.telemetry.actuators.pick import probe
from tscu_tui.engine.telemetry.actuators.rapl_limit import RaplPowerLimit
from tscu_tui.engine.telemetry.actuators.recover import recover_pending

ROOT = Path(__file__).parents[1]


@pytest.fixture
def state(tmp_path, monkeypatch) -> Path:
    """A journal of this test's own (the session's is checked empty at the end)."""
    folder = tmp_path / "state"
    monkeypatch.setenv("TSCU_STATE_DIR", str(folder))
    yield folder
    assert guard.active() == [], "a test left a knob changed"


def _entries() -> dict:
    return journal.read_entries()


# ----------------------------------------------------------------- Linux sysfs knobs
def test_cpufreq_fake_sysfs_maps_a_level_onto_each_policy_and_restores(tmp_path, state):
    root = fake_cpu_tree(tmp_path / "cpu")  # a hybrid CPU: 0.8-3.0 and 0.8-2.0 GHz
    actuator = CpufreqMaxFreq(root)
    assert (actuator.value_min, actuator.value_max) == (800.0, 3000.0)
    assert actuator.level() == 1.0 and actuator.speed_ratio(1.0) == 1.0
    change = actuator.set_level(0.5)
    assert change.applied and change.value == pytest.approx(1900.0)
    assert texts(root, "scaling_max_freq") == {"cpufreq/policy0/scaling_max_freq": "1900000",
                                               "cpufreq/policy1/scaling_max_freq": "1400000"}
    assert actuator.level() == pytest.approx(0.5)
    assert actuator.speed_ratio(0.5) == pytest.approx(1900 / 3000)
    entry = _entries()[actuator.key]  # the original is on disk while the change lasts
    assert entry["pid"] == os.getpid() and entry["kind"] == "sysfs"
    assert entry["original"] == {str(root / "cpufreq/policy0/scaling_max_freq"): "3000000",
                                 str(root / "cpufreq/policy1/scaling_max_freq"): "2000000"}
    assert guard.active() == [actuator.key]
    actuator.set_level(0.0)  # a second change keeps the first original
    assert _entries()[actuator.key]["original"] == entry["original"]
    restored = actuator.restore()
    assert restored.applied and actuator.restore() is None
    assert texts(root, "scaling_max_freq") == {"cpufreq/policy0/scaling_max_freq": "3000000",
                                               "cpufreq/policy1/scaling_max_freq": "2000000"}
    assert _entries() == {} and not journal.journal_path().exists()


def test_cpufreq_fake_sysfs_snaps_to_the_drivers_frequencies(tmp_path, state):
    steps = [800_000, 1_200_000, 1_600_000, 2_400_000, 3_000_000]
    root = fake_cpu_tree(tmp_path / "cpu", ranges_khz=[(800_000, 3_000_000)], available=steps)
    actuator = CpufreqMaxFreq(root)
    assert actuator.steps == (800.0, 1200.0, 1600.0, 2400.0, 3000.0)
    assert actuator.set_level(0.45).value == 1600.0  # 1790 MHz asked: nearest step
    assert texts(root, "scaling_max_freq") == {"cpufreq/policy0/scaling_max_freq": "1600000"}
    actuator.restore()


def test_intel_pstate_epp_and_rapl_fake_sysfs_change_and_restore(tmp_path, state):
    cpu = fake_cpu_tree(tmp_path / "cpu")
    powercap = fake_powercap_tree(tmp_path / "powercap", packages=2)
    pstate, epp, rapl = (IntelPstateMaxPerf(cpu), EnergyPerformancePreference(cpu),
                         RaplPowerLimit(powercap))
    assert pstate.set_level(0.5).value == pytest.approx(60.0)  # 20..100 %
    assert epp.choices == ["power", "balance_power", "balance_performance", "performance"]
    assert epp.level() == pytest.approx(2 / 3)  # balance_performance
    epp.set_level(0.0)
    assert set(texts(cpu, "energy_performance_preference").values()) == {"power"}
    assert rapl.value_max == pytest.approx(130.0) and rapl.controls == "power"
    assert rapl.speed_ratio(0.5) is None  # a power ceiling: its speed is measured
    rapl.set_level(0.0)  # the floor: a quarter of each package's 65 W
    assert set(texts(powercap, "constraint_0_power_limit_uw").values()) == {"16250000"}
    assert len(_entries()) == 3
    assert all(change.applied for change in guard.restore_all())
    assert texts(cpu, "max_perf_pct") == {"intel_pstate/max_perf_pct": "100"}
    assert set(texts(cpu, "energy_performance_preference").values()) == {"balance_performance"}
    assert set(texts(powercap, "constraint_0_power_limit_uw").values()) == {"65000000"}
    assert _entries() == {}


def test_probe_says_exactly_why_each_knob_is_unavailable_fake_sysfs(tmp_path, monkeypatch,
                                                                    state):
    empty = tmp_path / "cpu"
    (empty / "cpufreq").mkdir(parents=True)  # as on this machine: the folder, no policy
    found = {a.name: a for a in probe(cpu_root=empty, powercap_root=tmp_path / "none",
                                      system="linux").found}
    assert "has no policy with scaling_max_freq" in found["cpufreq"].detail
    assert "not intel_pstate" in found["intel_pstate"].detail
    assert "no RAPL driver" in found["rapl-limit"].detail
    assert found["duty-cycling"].available
    assert probe(cpu_root=empty, powercap_root=tmp_path / "none", system="linux").frequency \
        is None
    # A knob that exists but is root-only (the stand-in answers as the kernel would for
    # a user: this suite may run as root, which may write anything)
    root = fake_cpu_tree(tmp_path / "cpu2")
    monkeypatch.setattr(sysfs, "may_write", lambda path: False)
    with pytest.raises(ActuatorUnavailable, match="scaling_max_freq is not writable.*run "
                                                  "tscu as root, or give a group"):
        CpufreqMaxFreq(root)
    monkeypatch.undo()
    usable = probe(cpu_root=root, powercap_root=tmp_path / "none", system="linux")
    assert [a.name for a in usable.usable] == ["cpufreq", "intel_pstate", "epp"]
    assert usable.frequency.name == "cpufreq"  # a real clock cap first


def test_a_write_the_kernel_refuses_leaves_nothing_changed_fake_sysfs(tmp_path, state):
    root = fake_cpu_tree(tmp_path / "cpu", ranges_khz=[(800_000, 3_000_000)])
    actuator = CpufreqMaxFreq(root)
    target = root / "cpufreq/policy0/scaling_max_freq"
    target.unlink()
    target.mkdir()  # writing it now fails with an OSError, as EINVAL would
    change = actuator.set_level(0.5)
    assert not change.applied and "not changed" in change.message
    assert not actuator.changed and _entries() == {} and guard.active() == []


# ----------------------------------------------------------------- NVIDIA, fake NVML
class FakeNvmlClocks:
    """The slice of pynvml the clock actuator uses, with a power-vs-clock curve: board
    power P = P_static + k f^3 at the SM clock f (H100-like: 210-1980 MHz)."""

    P_STATIC_W, K_W_PER_MHZ3 = 90.0, 600.0 / 1980**3

    def __init__(self, root: bool) -> None:
        self.root = root
        self.locked: tuple[int, int] | None = None
        self.limit_mw = 700_000
        self.journal_at_change: dict = {}
        self.calls: list[str] = []

    def nvmlDeviceGetUUID(self, handle: object) -> str:
        return "GPU-fake-0"

    def nvmlDeviceGetSupportedMemoryClocks(self, handle: object) -> list[int]:
        return [2619, 1593]

    def nvmlDeviceGetSupportedGraphicsClocks(self, handle: object, memory: int) -> list[int]:
        return list(range(1980, 209, -15)) if memory == 2619 else [1005]

    def nvmlDeviceSetGpuLockedClocks(self, handle: object, low: int, high: int) -> None:
        self.calls.append(f"lock {low}-{high}")
        self.journal_at_change = journal.read_entries()
        if not self.root:
            raise PermissionError("Insufficient Permissions")
        self.locked = (low, high)

    def nvmlDeviceResetGpuLockedClocks(self, handle: object) -> None:
        self.calls.append("reset")
        self.locked = None

    def nvmlDeviceGetHandleByUUID(self, uuid: str) -> object:
        return uuid

    def nvmlDeviceGetPowerManagementLimit(self, handle: object) -> int:
        return self.limit_mw

    def nvmlDeviceGetPowerManagementLimitConstraints(self, handle: object) -> list[int]:
        return [200_000, 700_000]

    def nvmlDeviceSetPowerManagementLimit(self, handle: object, limit_mw: int) -> None:
        self.calls.append(f"power limit {limit_mw}")
        self.journal_at_change = journal.read_entries()
        self.limit_mw = limit_mw

    def power_w(self) -> float:
        f = self.locked[1] if self.locked else 1980
        return self.P_STATIC_W + self.K_W_PER_MHZ3 * f**3


def test_nvidia_locked_clocks_fake_nvml_lower_power_and_are_reset(state):
    nvml = FakeNvmlClocks(root=True)
    with pytest.raises(ActuatorUnavailable, match="needs root"):
        NvidiaLockedClocks(nvml, "h", "GPU 0", euid=1000)
    clocks = NvidiaLockedClocks(nvml, "h", "GPU 0", euid=0)
    assert (clocks.value_min, clocks.value_max) == (210.0, 1980.0) and len(clocks.steps) == 119
    full = nvml.power_w()
    change = clocks.set_level(0.5)  # 1095 MHz: a ceiling from the lowest clock up
    assert change.applied and nvml.locked == (210, 1095)
    assert clocks.speed_ratio(0.5) == pytest.approx(1095 / 1980)
    assert nvml.power_w() == pytest.approx(90 + 600 * (1095 / 1980) ** 3)
    assert nvml.power_w() < 0.5 * full  # the cube law: half the clock, far less power
    assert _entries()[clocks.key]["original"] == {"uuid": "GPU-fake-0", "locked": None}
    assert clocks.key in nvml.journal_at_change  # on disk before NVML was called
    assert clocks.restore().applied and nvml.locked is None and nvml.calls[-1] == "reset"
    assert _entries() == {}


def test_nvidia_locked_clocks_refused_by_nvml_are_reported_fake_nvml(state):
    nvml = FakeNvmlClocks(root=False)  # euid 0 but NVML still refuses (a container)
    change = NvidiaLockedClocks(nvml, "h", "GPU 0", euid=0).set_level(0.2)
    assert not change.applied and "Insufficient Permissions" in change.message
    assert nvml.locked is None and _entries() == {} and guard.active() == []


# ----------------------------------------------------------------- Apple, fake sudo/pmset
class FakeSudoPmset:
    """`pmset -g` and `sudo -n` as a Mac answers them; `allowed`: the sudoers line is in."""

    def __init__(self, allowed: bool, mode: int = 0) -> None:
        self.allowed, self.mode, self.commands = allowed, mode, []

    def __call__(self, argv):
        argv = list(argv)
        self.commands.append(" ".join(argv))
        if argv == ["/usr/bin/pmset", "-g"]:
            return 0, f"System-wide power settings:\n lowpowermode         {self.mode}\n"
        if argv[:2] == ["sudo", "-n"]:
            if not self.allowed:
                return 1, "sudo: a password is required\n"
            if argv[2] == "-l":
                return 0, " ".join(argv[3:]) + "\n"
            self.mode = int(argv[-1])
            return 0, ""
        return 127, "unexpected command"


def test_apple_low_power_mode_without_the_sudoers_line_says_only_duty_cycling_fake_sudo(
        state):
    run = FakeSudoPmset(allowed=False)
    with pytest.raises(ActuatorUnavailable) as err:
        AppleLowPowerMode(run, system="darwin", machine="arm64")
    assert "only duty cycling is available" in str(err.value) and SUDOERS_LINE in str(err.value)
    assert all(c.startswith(("/usr/bin/pmset -g", "sudo -n -l")) for c in run.commands)
    with pytest.raises(ActuatorUnavailable, match="not Apple Silicon"):
        AppleLowPowerMode(run, system="darwin", machine="x86_64")


def test_apple_low_power_mode_with_the_sudoers_line_is_set_and_restored_fake_sudo(state):
    run = FakeSudoPmset(allowed=True)
    lpm = AppleLowPowerMode(run, system="darwin", machine="arm64")
    assert lpm.level() == 1.0 and lpm.speed_ratio(0.0) is None
    assert lpm.set_level(0.0).applied and run.mode == 1
    assert "sudo -n /usr/bin/pmset -a lowpowermode 1" in run.commands
    assert lpm.restore().applied and run.mode == 0
    assert not any("sudo " in c and "-n" not in c for c in run.commands)  # never a prompt


# ----------------------------------------------------------------- journal and processes
def test_a_knob_a_live_tscu_owns_is_refused_and_a_dead_ones_original_is_kept(tmp_path,
                                                                            state):
    root = fake_cpu_tree(tmp_path / "cpu", ranges_khz=[(800_000, 3_000_000)])
    actuator = CpufreqMaxFreq(root)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        journal.record(actuator.key, "sysfs", {"x": "1"}, "held by another run")
        with journal._locked() as entries:  # as that live process would have written it
            entries[actuator.key].update(pid=live.pid,
                                         pid_started=journal.process_started(live.pid))
        change = actuator.set_level(0.5)
        assert not change.applied and f"tscu process {live.pid} is using it" in change.message
    finally:
        live.kill()
        live.wait()
    # its owner is gone: the knob still holds its change, so its original is the real one
    path = str(root / "cpufreq/policy0/scaling_max_freq")
    with journal._locked() as entries:
        entries[actuator.key]["original"] = {path: "2500000"}
    assert actuator.set_level(0.5).applied
    actuator.restore()
    assert texts(root, "scaling_max_freq") == {"cpufreq/policy0/scaling_max_freq": "2500000"}


def _child(root: Path, mode: str, state: Path) -> subprocess.Popen:
    env = {**os.environ, "TSCU_STATE_DIR": str(state),
           "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "actuator_child.py"),
                              str(root), mode], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=env)
    assert child.stdout.readline().strip() == "changed", child.stderr.read()
    return child


ORIGINAL = {"cpufreq/policy0/scaling_max_freq": "3000000",
            "cpufreq/policy1/scaling_max_freq": "2000000"}


@pytest.mark.parametrize("how", ["SIGINT", "SIGTERM", "exception"])
def test_a_real_process_restores_on_ctrl_c_sigterm_and_a_crash_fake_sysfs(tmp_path, how):
    state = tmp_path / "state"
    root = fake_cpu_tree(tmp_path / "cpu")
    child = _child(root, "raise" if how == "exception" else "wait", state)
    assert texts(root, "scaling_max_freq") != ORIGINAL  # changed while it runs
    assert len(json.loads((state / "actuators.json").read_text())["entries"]) == 1
    if how != "exception":
        child.send_signal(getattr(signal, how))
    rc = child.wait(timeout=30)
    stderr = child.stderr.read()
    assert texts(root, "scaling_max_freq") == ORIGINAL, stderr
    assert not (state / "actuators.json").exists()  # restored, so nothing left to recover
    expected = {"SIGINT": ("KeyboardInterrupt", -signal.SIGINT),  # as Python exits on it
                "SIGTERM": ("", -signal.SIGTERM),
                "exception": ("RuntimeError: a bug in the training loop", 1)}[how]
    assert expected[0] in stderr and rc == expected[1]


def test_after_a_sigkill_the_original_is_on_disk_and_the_next_tscu_start_restores_it(
        tmp_path):
    state = tmp_path / "state"
    root = fake_cpu_tree(tmp_path / "cpu")
    child = _child(root, "wait", state)
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=30) == -signal.SIGKILL
    assert texts(root, "scaling_max_freq") != ORIGINAL  # nothing could run at the kill
    entries = json.loads((state / "actuators.json").read_text())["entries"]
    (entry,) = entries.values()
    assert entry["pid"] == child.pid and entry["original"] == {
        str(root / name): text for name, text in ORIGINAL.items()}
    env = {**os.environ, "TSCU_STATE_DIR": str(state)}
    start = subprocess.run([sys.executable, "-m", "tscu_tui", "--version"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert start.returncode == 0
    assert f"restored cpufreq scaling_max_freq of 2 policies (800-3000 MHz) (changed by " \
           f"tscu process {child.pid}" in start.stderr
    assert texts(root, "scaling_max_freq") == ORIGINAL
    assert not (state / "actuators.json").exists()
    again = subprocess.run([sys.executable, "-m", "tscu_tui", "--version"], env=env,
                           capture_output=True, text=True, timeout=60)
    assert again.stderr == ""  # restored once, then forgotten


def test_an_orphan_that_cannot_be_restored_stays_recorded_with_the_hand_command(tmp_path,
                                                                               state):
    gone = tmp_path / "gone" / "scaling_max_freq"  # its folder is gone: the write fails
    with journal._locked() as entries:
        entries["sysfs:gone"] = {"kind": "sysfs", "original": {str(gone): "3000000"},
                                 "description": "cpufreq", "pid": 2**22 + 12345,
                                 "pid_started": 0.0}
    (message,) = recover_pending()
    assert "could not restore cpufreq" in message and f"echo 3000000 | sudo tee {gone}" \
        in message
    assert "sysfs:gone" in _entries()
    with journal._locked() as entries:
        entries.clear()


def test_an_emergency_stop_restores_the_clock_in_a_real_run_fake_sysfs(demo_data, tmp_path,
                                                                     state):
    root = fake_cpu_tree(tmp_path / "cpu")
    CpufreqMaxFreq(root).set_level(0.0)  # as the governor would have lowered it
    events, _ = train(tiny_config(demo_data, tmp_path / "run", 'telemetry.source="simulated"',
                                  "telemetry.interval_seconds=0.05",
                                  "tscu.max_temperature_celsius=25.5",
                                  "tscu.temperature_hysteresis_celsius=0.1",
                                  "tscu.emergency_shutdown_temp=26.0", "train.max_steps=500",
                                  "train.eval_steps=1000", "train.save_steps=1000"))
    finished = [e for e in events if isinstance(e, RunFinished)]
    assert [e.reason for e in finished] == ["emergency_stop"]
    assert texts(root, "scaling_max_freq") == ORIGINAL and guard.active() == []
    assert any(getattr(e, "message", "").startswith("cpufreq scaling_max_freq of 2 policies "
                                                    "(800-3000 MHz) restored to 3000000/2000000")
               for e in events)


def test_tscu_telemetry_lists_what_can_be_actuated_here_and_why_not(tmp_path):
    """The real machine, read only: the listing says what `probe` finds on this machine
    (here: a cpufreq folder without a policy, no intel_pstate, no powercap)."""
    from tscu_tui.engine.train.device import mlx_compute_device

    compute = mlx_compute_device()
    if compute.backend == "cuda":
        pytest.skip("on a CUDA machine the listing probes NVML instead (tested with fakes)")
    result = subprocess.run([sys.executable, "-m", "tscu_tui", "telemetry", "--count", "0"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("actuators for "))
    assert "nothing changed" in lines[start]
    for i, found in enumerate(probe().found, start + 1):
        state = "available" if found.available else "unavailable"
        assert lines[i] == f"  {found.name:<14} {state}: {found.detail}"
    assert lines[start + len(probe().found)].startswith("  duty-cycling   available")


def test_the_next_start_unlocks_clocks_and_resets_the_power_limit_a_killed_run_left_fake_nvml(
        state):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)  # a real process that has ended
    with journal._locked() as entries:
        for key, kind, original in [
                ("nvml-clocks:GPU-fake-0", "nvml-clocks", {"uuid": "GPU-fake-0", "locked": None}),
                ("nvml-power:GPU-fake-0", "nvml-power", {"uuid": "GPU-fake-0",
                                                         "milliwatts": 700_000})]:
            entries[key] = {"kind": kind, "original": original, "description": kind,
                            "pid": pid, "pid_started": 0.0}
    nvml = FakeNvmlClocks(root=True)
    messages = recover_pending(nvml=lambda: nvml)
    assert sorted(nvml.calls) == ["power limit 700000", "reset"]
    assert all(m.startswith("restored nvml-") and f"process {pid}" in m for m in messages)
    assert _entries() == {}


def test_the_board_power_limit_is_journalled_before_it_is_set_fake_nvml(state):
    from tscu_tui.engine.telemetry.nvidia_limit import NvidiaPowerLimit

    nvml = FakeNvmlClocks(root=True)
    limit = NvidiaPowerLimit(nvml, "h", "GPU 0")
    assert limit.apply(300.0).applied and nvml.limit_mw == 300_000
    assert nvml.journal_at_change["nvml-power:GPU-fake-0"]["original"] == {
        "uuid": "GPU-fake-0", "milliwatts": 700_000}
    assert guard.active() == ["nvml-power:GPU-fake-0"]
    assert limit.restore().applied and nvml.limit_mw == 700_000 and _entries() == {}
