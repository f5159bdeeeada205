"""Fault injection: the real training loop on the embedded model, through each fault, then resumed.

Each fault hits a real `tscu` run (the embedded model on the demo corpus, a
checkpoint every 6 steps, the simulated thermal plant unless the fault is in the
telemetry), and `tscu train --resume` then runs it to the planned step. Per fault
it prints how the run ended, whether it stopped safely (it ended by itself, with
a line saying why, and its last checkpoint loads), how many steps of work were
lost (steps trained before the fault, minus the step the resume starts from),
and whether the resumed run reached the planned step with final metrics
identical to an unfaulted run's: every step's loss, every held-out BPT and the
adapter weights, bit for bit.

- sensor dies: telemetry replays a recording that ends mid-run; on_sensor_loss = "stop"
- sensor returns garbage: the recording turns to 1e6 °C and -3e9 W; on_sensor_loss = "slow"
- temperature spike past emergency: the recording jumps to 95 °C (the emergency is 85 °C)
- disk full during a checkpoint: ENOSPC at the file boundary (tests/faults) in step 12's
- SIGKILL during a checkpoint write: the process kills itself inside step 12's checkpoint
- SIGKILL of a rank: `--launch 2`, rank 1 killed after step 8 (compared with 2 ranks)
- terminal lost: the app training on a real pty, which is then closed (tmux kill-session)

The results are step counts and equalities, not timings: load on the machine only
moves the step a time-based fault lands on. BLAS runs one thread per process, so
the runs can be compared bit for bit.

    python bench/faults.py [--steps 24] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import tscu_tui.engine  # noqa: F401  (OpenBLAS before anything imports mlx)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from pty_terminal import PtyTerminal  # noqa: E402  (shared with the terminal-lost test)

ROOT = Path(__file__).resolve().parent.parent
FAULTS = ROOT / "tests" / "faults"  # the file-boundary fault injection (sitecustomize)
SAVE_EVERY = 6
PERIOD_S = 0.05  # telemetry sampling period: a recording of n samples lasts n * 50 ms


@dataclass(frozen=True)
class Row:
    fault: str
    ended: str
    safe: str
    lost: str
    resumed: str
    metrics: str


class Bench:
    def __init__(self, root: Path, steps: int) -> None:
        self.root, self.steps = root, steps
        self.data = root / "data"
        self.env = {**os.environ, "TSCU_BLAS_THREADS": "1",
                    "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
        self.reference: dict[str, object] | None = None
        self.start_s = 1.0  # seconds from the telemetry's start to a third of the run

    # ----------------------------------------------------------------- running tscu
    def config(self, name: str, *overrides: str) -> Path:
        from tscu_tui.engine.config import load_config, save_config
        from tscu_tui.engine.models.load import EMBEDDED_MODEL

        file = self.root / f"{name}.toml"
        save_config(file, load_config(None, [
            f'model.name="{EMBEDDED_MODEL}"', f'data.path="{self.data}"',
            f'output.dir="{self.root / name}"', "lora.r=4", "lora.alpha=8.0",
            "lora.dropout=0.0", "train.batch_size=4", "train.gradient_accumulation_steps=1",
            "train.learning_rate=2e-3", "train.warmup_steps=2", f"train.max_steps={self.steps}",
            "train.eval_steps=12", f"train.save_steps={SAVE_EVERY}", "train.eval_batches=2",
            "train.logging_steps=1", 'telemetry.source="simulated"',
            f"telemetry.interval_seconds={PERIOD_S}", "tscu.power_budget_watts=1000",
            *overrides]))
        return file

    def tscu(self, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, "-m", "tscu_tui", *args],
                                env={**self.env, **(env or {})}, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True)

    def train(self, config: Path, *extra: str, env: dict[str, str] | None = None) -> int:
        process = self.tscu("train", "--config", str(config), *extra, env=env)
        _, self.stderr = process.communicate(timeout=900)
        return process.returncode

    def resume(self, config: Path, *extra: str) -> str:
        """Run to the planned step from the last checkpoint; '' when it got there."""
        if self.train(config, "--resume", *extra) != 0:
            return f"no: {self.error()}"
        last = records(self.root / config.stem)[-1]
        return "" if (last["event"], last["step"]) == ("RunFinished", self.steps) else \
            f"no: ended at step {last['step']}"

    def error(self) -> str:
        lines = [line for line in self.stderr.splitlines() if line.startswith("tscu: error:")]
        line = lines[-1][len("tscu: error: "):] if lines else "(no line)"
        return line.replace(f"{self.root}/", "")

    def wait_for_step(self, run: Path, step: int, process: subprocess.Popen | None) -> None:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            if reached(run) >= step:
                return
            if process is not None and process.poll() is not None:
                raise SystemExit(f"{run.name} ended before step {step}: {self.stderr}")
            time.sleep(0.05)
        raise SystemExit(f"{run.name} never reached step {step}")

    # ----------------------------------------------------------------- the verdict
    def verdict(self, fault: str, run: Path, ended_by_itself: bool, ended: str,
                resumed: str | None, two_ranks: bool = False) -> Row:
        from tscu_tui.engine.train.checkpoint import latest_checkpoint

        loads = latest_checkpoint(run) is not None
        safe = "yes" if ended_by_itself and loads else (
            "no: " + ("it never ended" if not ended_by_itself else "no checkpoint"))
        starts = [r["start_step"] for r in records(run) if r["event"] == "RunStarted"]
        before = max((r["step"] for r in records(run)[:_second_start(run)]
                      if r["event"] == "StepEvent"), default=0)
        lost = str(before - starts[1]) if len(starts) > 1 else "0"
        if resumed is None:
            resumed = "not needed (completed)" if reached(run) == self.steps else "no"
        elif resumed == "":
            resumed = f"yes (from step {starts[-1]})"
        reference = self.two_ranks if two_ranks else self.reference
        return Row(fault, ended, safe, lost, resumed, compare(finals(run), reference))

    # ----------------------------------------------------------------- the faults
    def unfaulted(self) -> None:
        assert self.train(self.config("unfaulted")) == 0, self.stderr
        done = records(self.root / "unfaulted")
        steps = [r for r in done if r["event"] == "StepEvent"][: self.steps // 3]
        first_eval = next(r["eval_s"] for r in done if r["event"] == "EvalEvent")
        self.start_s = first_eval + sum(r["step_s"] + (r["idle_s"] or 0.0) for r in steps)
        self.reference = finals(self.root / "unfaulted")
        assert self.train(self.config("unfaulted-2-ranks"), "--launch", "2") == 0, self.stderr
        self.two_ranks = finals(self.root / "unfaulted-2-ranks")

    def sensor(self, name: str, fault: str, kind: str, policy: str) -> Row:
        good = max(8, int(self.start_s / 2 / PERIOD_S))  # about a sixth into the run
        bad = {"dies": [], "garbage": [{"power_w": -3e9, "temp_c": 1e6}] * 400,
               "spike": [{"power_w": 15.0, "temp_c": 95.0}] * 400}[kind]
        recording = self.root / f"{name}.jsonl"
        rows = [{"power_w": 15.0, "temp_c": 40.0}] * good + bad
        recording.write_text("".join(json.dumps({
            "t_s": i * PERIOD_S, "energy_j": None, "source": "recorded", "kind": "measured",
            **row}) + "\n" for i, row in enumerate(rows)))
        config = self.config(name, 'telemetry.source="replay"',
                             f'telemetry.replay_path="{recording}"',
                             f'tscu.on_sensor_loss="{policy}"')
        code = self.train(config)
        done = records(self.root / name)
        last = done[-1]
        ended = f"{last['event']} ({last.get('reason')}) at step {last['step']}"
        lost = next((r for r in done if r["event"] == "StepEvent"
                     and (r.get("telemetry_status") or "").startswith("lost")), None)
        if lost is not None and last.get("reason") == "completed":
            ended += (f"; telemetry lost from step {lost['step']}, c held at "
                      f"{lost['control_factor']:g} from there")
        resumed = None
        if last["event"] != "RunFinished" or last["step"] < self.steps:
            resumed = self.resume(self.config(name))  # the sensor works again
        return self.verdict(fault, self.root / name, code == 0, ended, resumed)

    def file_fault(self, name: str, fault: str, spec: str) -> Row:
        config = self.config(name)
        env = {"TSCU_FAULT": spec, "PYTHONPATH": os.pathsep.join([str(FAULTS),
                                                                  self.env["PYTHONPATH"]])}
        code = self.train(config, env=env)
        if code == -signal.SIGKILL:
            ended = f"killed at step {reached(self.root / name)} (SIGKILL)"
        else:
            ended = f"failed at step {reached(self.root / name)}: {self.error()}"
        resumed = self.resume(config)
        return self.verdict(fault, self.root / name, code != 0, ended, resumed)

    def rank_killed(self) -> Row:
        import psutil

        name = "rank-killed"
        config = self.config(name)
        launch = self.tscu("train", "--config", str(config), "--launch", "2")
        self.wait_for_step(self.root / name, SAVE_EVERY + 2, launch)
        victim = next(p for p in psutil.Process(launch.pid).children(recursive=True)
                      if _rank(p) == "1")
        victim.send_signal(signal.SIGKILL)
        try:
            _, self.stderr = launch.communicate(timeout=120)
            by_itself = True
        except subprocess.TimeoutExpired:
            launch.kill()
            _, self.stderr = launch.communicate()
            by_itself = False
        ended = f"all ranks stopped at step {reached(self.root / name)}: {self.error()}"
        resumed = self.resume(config, "--launch", "2")
        return self.verdict("SIGKILL of a rank", self.root / name, by_itself, ended, resumed,
                            two_ranks=True)

    def terminal_lost(self) -> Row:
        name = "terminal-lost"
        config = self.config(name)
        app = PtyTerminal([sys.executable, "-m", "tscu_tui", "--config", str(config)],
                          self.root, self.env)
        try:
            if not app.wait_for(b"press s to start"):
                raise SystemExit("the app never showed its train screen")
            app.type("s")
            self.wait_for_step(self.root / name, SAVE_EVERY + 2, None)
            app.hang_up()
            try:
                app.process.wait(timeout=60)
                by_itself = True
            except subprocess.TimeoutExpired:
                by_itself = False
        finally:
            app.process.kill()
            app.process.wait()
        last = records(self.root / name)[-1]
        ended = f"{last['event']} ({last.get('reason')}) at step {last['step']}, app exited"
        resumed = self.resume(config)
        return self.verdict("terminal lost", self.root / name, by_itself, ended, resumed)


def records(run: Path) -> list[dict]:
    path = run / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] \
        if path.exists() else []


def reached(run: Path) -> int:
    return max((r["step"] for r in records(run) if r["event"] == "StepEvent"), default=0)


def _second_start(run: Path) -> int:
    """Index of the resumed session's RunStarted (the end of the faulted session)."""
    starts = [i for i, r in enumerate(records(run)) if r["event"] == "RunStarted"]
    return starts[1] if len(starts) > 1 else len(records(run))


def _rank(process: object) -> str | None:
    try:
        return process.environ().get("MLX_RANK")  # type: ignore[attr-defined]
    except Exception:
        return None


def finals(run: Path) -> dict[str, object]:
    """What 'identical final metrics' compares: every step's loss, every held-out BPT,
    and the adapter weights."""
    import numpy as np

    from tscu_tui.engine.models.runtime import mx

    history = json.loads((run / "mlx_tscu_training_metrics.json").read_text())
    weights = mx.load(str(run / "adapters.safetensors"))
    return {"loss": [s["loss"] for s in history["steps"]],
            "steps": [s["step"] for s in history["steps"]],
            "heldout": [(e["step"], e["heldout_bpt"]) for e in history["evals"]],
            "weights": {k: np.array(v.astype(mx.float32)) for k, v in weights.items()}}


def compare(got: dict[str, object], want: dict[str, object] | None) -> str:
    import numpy as np

    if want is None:
        return "n/a"
    if got["steps"] != want["steps"]:
        return f"different steps recorded ({len(got['steps'])} vs {len(want['steps'])})"
    same = (got["loss"] == want["loss"] and got["heldout"] == want["heldout"]
            and all(np.array_equal(got["weights"][k], w) for k, w in want["weights"].items()))
    if same:
        return "identical"
    worst = max(abs(a - b) / abs(b) for a, b in zip(got["loss"], want["loss"], strict=True))
    return f"differ: loss up to {worst:.1e} relative"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=24, help="planned steps per run")
    parser.add_argument("--keep", metavar="DIR", help="keep the runs in DIR")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(args.keep or tmp)
        root.mkdir(parents=True, exist_ok=True)
        from tscu_tui.engine.config.assets import DEMO_CORPUS
        from tscu_tui.engine.data import PrepareOptions, prepare_dataset
        from tscu_tui.engine.models.load import EMBEDDED_MODEL

        bench = Bench(root, args.steps)
        prepare_dataset(PrepareOptions(dataset=str(DEMO_CORPUS), model=EMBEDDED_MODEL,
                                       output_dir=bench.data, block_size=64,
                                       validation_fraction=0.05, max_tokens=120_000,
                                       overwrite=True))
        bench.unfaulted()
        rows = [bench.sensor("sensor-dies", "sensor dies (on_sensor_loss = stop)", "dies",
                             "stop"),
                bench.sensor("sensor-garbage", "sensor returns garbage (on_sensor_loss = "
                             "slow)", "garbage", "slow"),
                bench.sensor("spike", "temperature spike past emergency", "spike", "slow"),
                bench.file_fault("disk-full", "disk full during a checkpoint (ENOSPC)",
                                 f"enospc@{2 * SAVE_EVERY}"),
                bench.file_fault("killed-in-write", "SIGKILL during a checkpoint write",
                                 f"kill@{2 * SAVE_EVERY}"),
                bench.rank_killed(), bench.terminal_lost()]
    print(f"\n{args.steps} planned steps, a checkpoint every {SAVE_EVERY}; embedded model, "
          "demo corpus\n")
    header = ("fault", "how the run ended", "stopped safely", "steps lost",
              f"--resume reached step {args.steps}", "final metrics vs unfaulted")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print(f"| {row.fault} | {row.ended} | {row.safe} | {row.lost} | {row.resumed} | "
              f"{row.metrics} |")


if __name__ == "__main__":
    main()
