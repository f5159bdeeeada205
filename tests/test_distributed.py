"""Data-parallel training: real mlx.launch ring ranks on localhost, real watchdog sockets.

Tolerance of the 2 x b against 1 x 2b comparison: both runs see the same global
batch in the same order and start from the same adapters, so they differ only in
float32 rounding: a mean of two half-batch means instead of one mean, gradients
summed across ranks in another order, and the step statistics carried in float32
(relative error ~1e-7 per operation). Measured: at most ~1e-5 relative over the
run. 1e-4 relative (and 1e-4 bits absolute on held-out BPT, which is 8.5 bits)
leaves room for that, while a real fault (a rank training on the wrong share,
gradients summed instead of averaged, a missed all-reduce) moves the loss by
1e-2 or more within a step or two.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
from runs import tiny_config, train

import tscu_tui
from tscu_tui.engine.config import load_config, save_config
from tscu_tui.engine.distributed.launch import launch_command, plan_launch
from tscu_tui.engine.distributed.liveness import Liveness, Loss
from tscu_tui.engine.errors import TscuError
from tscu_tui.engine.events import EvalEvent, StepEvent
from tscu_tui.engine.runs.follow import read_events
from tscu_tui.engine.train.checkpoint import latest_checkpoint

CODE = str(Path(tscu_tui.__file__).resolve().parent.parent)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TSCU_DIST", "MLX_"))}
    env["PYTHONPATH"] = os.pathsep.join([CODE, *filter(None, [env.get("PYTHONPATH")])])
    return {**env, **extra}


def _config_file(data: Path, out: Path, *overrides: str) -> Path:
    file = out.parent / f"{out.name}.toml"
    save_config(file, tiny_config(data, out, *overrides))
    return file


def _tscu(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "tscu_tui", *args], env=env or _env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("tscu: error:")]


# ---------------------------------------------------------------------- launching, fast
def test_launch_plans_come_from_flags_or_config_and_bad_input_is_one_line(tmp_path):
    config = load_config(None, ["distributed.ranks=3"])
    assert plan_launch(None, None, load_config(None).distributed) is None  # one process
    assert plan_launch(None, None, config.distributed).ranks == 3
    assert plan_launch(2, None, config.distributed).ranks == 2  # the flag wins
    plan = plan_launch(2, None, load_config(None).distributed)
    command, env = launch_command(plan, ["train"])
    assert command[-4:] == [sys.executable, "-m", "tscu_tui", "train"]
    assert env["TSCU_DIST_WORLD"] == "2" and env["TSCU_DIST_WATCHDOG"].startswith("127.0.0.1:")
    ring_port = int(command[command.index("--starting-port") + 1])
    assert int(env["TSCU_DIST_WATCHDOG"].rpartition(":")[2]) == ring_port - 1
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps({"backend": "ring", "hosts": [
        {"ssh": "mac1", "ips": ["10.0.0.1"]}, {"ssh": "mac2", "ips": ["10.0.0.2"]}]}))
    plan = plan_launch(None, str(hostfile), load_config(None).distributed)
    assert (plan.ranks, plan.hosts, plan.backend, plan.local) == (2, ["mac1", "mac2"],
                                                                  "ring", False)
    assert launch_command(plan, ["train"])[1]["TSCU_DIST_WATCHDOG"] == "10.0.0.1:32322"
    with pytest.raises(TscuError, match="not both"):
        plan_launch(2, str(hostfile), load_config(None).distributed)
    hostfile.write_text('{"hosts": [{"ssh": "a"}, 3]}')
    with pytest.raises(TscuError, match=r"hosts.json: host 1 needs an \"ssh\" name"):
        plan_launch(None, str(hostfile), load_config(None).distributed)
    with pytest.raises(TscuError, match="missing.json: cannot read the hostfile"):
        plan_launch(None, str(tmp_path / "missing.json"), load_config(None).distributed)


SECRET = "0123456789abcdef" * 4  # the run's secret, as the launcher would hand it out

_PEER = """
import os, sys, time
from tscu_tui.engine.distributed.liveness import Liveness
live = Liveness(1, 2, sys.argv[1], lambda loss: print("lost", loss.rank, loss.reason,
                flush=True), secret=sys.argv[3], timeout_s=1.0, period_s=0.1)
live.start()
print("up", flush=True)
if sys.argv[2] == "die":
    time.sleep(0.5)
    os._exit(3)
time.sleep(60)
"""


def _free_address(host: str = "127.0.0.1") -> str:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return f"{host}:{probe.getsockname()[1]}"


def _peer(address: str, how: str = "live") -> subprocess.Popen:
    """Rank 1's watchdog in a process of its own; it prints "lost ..." if it loses rank 0."""
    return subprocess.Popen([sys.executable, "-c", _PEER, address, how, SECRET], env=_env(),
                            stdout=subprocess.PIPE, text=True)


@pytest.mark.parametrize("how", ["die", "hang"])
def test_the_watchdog_names_a_rank_that_dies_or_hangs(how):
    address = _free_address()
    peer = _peer(address, how)
    losses: list[Loss] = []
    live = Liveness(0, 2, address, losses.append, secret=SECRET, timeout_s=1.0, period_s=0.1)
    try:
        live.start()  # returns once rank 1 has connected
        assert peer.stdout.readline() == "up\n"
        started = time.monotonic()
        if how == "hang":
            peer.send_signal(signal.SIGSTOP)  # alive, silent: what a hung rank looks like
        loss = live.wait_for_loss(10.0)
        assert loss is not None and loss.rank == 1 and losses == [loss]
        assert time.monotonic() - started < 3.0
        assert ("ended without a word" if how == "die" else "no heartbeat") in loss.reason
    finally:
        peer.kill()
        peer.wait()
        live.close()


def _stranger(address: str) -> socket.socket:
    host, _, port = address.rpartition(":")
    return socket.create_connection((host, int(port)), timeout=2.0)


@pytest.mark.parametrize("stranger", ["slow hello", "forged hello", "wrong proof"])
def test_a_stranger_at_the_watchdog_neither_stalls_heartbeats_nor_replaces_a_rank(stranger):
    """Rank 0's watchdog with rank 1 (a real process) connected; then a client that is
    not a rank of this run: one that sends its hello a byte every 0.3 s (rank 0 once
    read it byte by byte, blocking the heartbeat loop: rank 1 declared rank 0 lost),
    one that claims to be rank 1 without the secret and hangs up (it once replaced the
    real rank 1, whose heartbeats then went nowhere, and its hang-up read as rank 1
    lost), and one whose proof is wrong. None of them may cost a heartbeat."""
    address = _free_address()
    peer = _peer(address)
    losses: list[Loss] = []
    live = Liveness(0, 2, address, losses.append, secret=SECRET, timeout_s=1.0, period_s=0.1)
    try:
        live.start()
        assert peer.stdout.readline() == "up\n"
        with _stranger(address) as sock:
            if stranger == "slow hello":  # 2 s: twice what rank 1 waits for a heartbeat
                for byte in b'{"t": "hello", "r':
                    sock.send(bytes([byte]))
                    time.sleep(0.15)  # real sockets, real time: a client that trickles
            else:
                proof = "0" * 64 if stranger == "wrong proof" else None
                hello = {"t": "hello", "rank": 1, **({"proof": proof} if proof else {})}
                sock.sendall((json.dumps(hello) + "\n").encode())
                time.sleep(0.2)
        time.sleep(1.5)  # more than a heartbeat timeout after the stranger left
        assert live.loss is None and losses == []
        assert peer.poll() is None
    finally:
        peer.kill()
        out = peer.communicate()[0]
        live.close()
    assert "lost" not in out, out


def test_the_watchdog_listens_on_the_ranks_address_only():
    """Rank 0 told to listen on 127.0.0.2 (the ranks' address) is not reachable on
    127.0.0.1: it once bound every interface."""
    address = _free_address("127.0.0.2")
    peer = _peer(address)
    live = Liveness(0, 2, address, lambda loss: None, secret=SECRET, timeout_s=2.0,
                    period_s=0.1)
    try:
        live.start()
        assert peer.stdout.readline() == "up\n"
        with pytest.raises(ConnectionRefusedError):
            _stranger("127.0.0.1:" + address.rpartition(":")[2])
    finally:
        peer.kill()
        peer.wait()
        live.close()


def test_the_launch_hands_the_ranks_a_secret_on_no_local_command_line(tmp_path):
    plan = plan_launch(2, None, load_config(None).distributed)
    command, env = launch_command(plan, ["train"])
    secret = env["TSCU_DIST_SECRET"]
    assert len(secret) == 64 and not any(secret in arg for arg in command)
    assert launch_command(plan, ["train"])[1]["TSCU_DIST_SECRET"] != secret  # per run
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps({"hosts": [{"ssh": "mac1", "ips": ["10.0.0.1"]},
                                              {"ssh": "mac2", "ips": ["10.0.0.2"]}]}))
    command, env = launch_command(plan_launch(None, str(hostfile),
                                              load_config(None).distributed), ["train"])
    assert f"TSCU_DIST_SECRET={env['TSCU_DIST_SECRET']}" in command  # only ssh carries it


def test_a_world_of_one_where_two_were_asked_for_is_an_error(demo_data, tmp_path):
    run = _tscu("train", "--config", str(_config_file(demo_data, tmp_path / "run")),
                env=_env(TSCU_DIST_WORLD="2"))
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 1
    assert len(_errors(stderr)) == 1 and "2 ranks were asked for" in stderr
    assert "Traceback" not in stderr and not (tmp_path / "run").exists()


# ---------------------------------------------------------------------- ring ranks
def test_two_ranks_of_b_follow_one_rank_of_2b_and_write_one_run_folder(demo_data, tmp_path):
    overrides = ("train.batch_size=8", "train.max_steps=6", "train.eval_steps=3",
                 "train.save_steps=3")
    events, _ = train(tiny_config(demo_data, tmp_path / "one" / "run", *overrides))
    (tmp_path / "two").mkdir()
    file = _config_file(demo_data, tmp_path / "two" / "run", *overrides)
    launch = _tscu("train", "--config", str(file), "--launch", "2", "--report-to", "tensorboard")
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 0, stderr
    assert _errors(stderr) == [] and "[ring]" not in stderr

    run = tmp_path / "two" / "run"
    # --report-to reached the ranks, and rank 0 alone reports: one event file, each step once
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    board = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0})
    board.Reload()
    assert [s.step for s in board.Scalars("train/loss")] == list(range(1, 7))
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["run", "run.toml"]
    followed = read_events(run)  # what `tscu watch` replays: rank 0's folder alone
    assert type(followed[0]).__name__ == "RunStarted" and followed[0].world_size == 2
    assert type(followed[-1]).__name__ == "RunFinished"
    one = [e for e in events if isinstance(e, StepEvent)]
    two = [e for e in followed if isinstance(e, StepEvent)]
    assert [e.step for e in two] == [e.step for e in one] == list(range(1, 7))
    for a, b in zip(one, two, strict=True):
        for field in ("loss", "data_bpt", "param_bpt", "s", "lambda_reg", "grad_norm"):
            assert getattr(b, field) == pytest.approx(getattr(a, field), rel=1e-4), field
        assert b.tokens == a.tokens and len(b.node_power_w) == 2
    heldout = [(e.step, e.heldout_bpt) for e in events if isinstance(e, EvalEvent)]
    heldout2 = [(e.step, e.heldout_bpt) for e in followed if isinstance(e, EvalEvent)]
    assert [s for s, _ in heldout2] == [s for s, _ in heldout] == [0, 3, 6]
    np.testing.assert_allclose([b for _, b in heldout2], [b for _, b in heldout], atol=1e-4)
    summary = json.loads((run / "mlx_training_summary.json").read_text())
    assert (summary["world_size"], summary["backend"]) == (2, "ring")
    analysis = json.loads((run / "mlx_tscu_analysis.json").read_text())
    assert analysis["world_size"] == 2 and [n["rank"] for n in analysis["nodes"]] == [0, 1]
    assert "**Data parallel**: 2 ranks over mx.distributed (ring)" in (
        run / "README.md").read_text()


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    for child in psutil.Process(launcher.pid).children(recursive=True):
        try:
            if child.environ().get("MLX_RANK") == str(rank):
                return child.pid
        except psutil.Error:
            continue
    raise AssertionError(f"no rank {rank} process")


def test_killing_a_rank_stops_all_with_one_line_and_two_ranks_resume_it(demo_data, tmp_path):
    file = _config_file(demo_data, tmp_path / "run", "train.max_steps=200",
                        "train.save_steps=3", "train.eval_steps=100")
    launch = _tscu("train", "--config", str(file), "--launch", "2")
    events = tmp_path / "run" / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # past the step-3 checkpoint
        text = events.read_text() if events.exists() else ""
        if '"step": 4' in text and '"StepEvent"' in text:
            break
        assert launch.poll() is None, launch.communicate()[1]
        time.sleep(0.05)
    os.kill(_rank_pid(launch, 1), signal.SIGKILL)
    killed = time.monotonic()
    _, stderr = launch.communicate(timeout=60)
    assert time.monotonic() - killed < 10.0  # within seconds, not a hang
    assert launch.returncode == 1
    errors = _errors(stderr)
    assert len(errors) == 1 and "rank 1 was lost" in errors[0], stderr
    assert "Traceback" not in stderr and "[ring]" not in stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["event"] == "RunFailed" and records[-1]["rank"] == 1
    checkpoint = latest_checkpoint(tmp_path / "run")
    assert checkpoint is not None and checkpoint.step % 3 == 0 and checkpoint.step >= 3
    assert not (tmp_path / "run" / "adapters.safetensors").exists()  # it never finished

    single = _tscu("train", "--config", str(file), "--resume")  # not with another world size
    _, stderr = single.communicate(timeout=120)
    assert single.returncode == 1 and "trained by 2 ranks" in _errors(stderr)[0]

    # Two ranks resume it; Ctrl+C (to the launcher) reaches both, which stop together.
    resumed = _tscu("train", "--config", str(file), "--launch", "2", "--resume")
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        records = [json.loads(line) for line in events.read_text().splitlines()]
        starts = [r["start_step"] for r in records if r["event"] == "RunStarted"]
        if len(starts) == 2 and records[-1]["event"] == "StepEvent":
            break
        assert resumed.poll() is None, resumed.communicate()[1]
        time.sleep(0.05)
    assert starts == [0, checkpoint.step]
    second = max(i for i, r in enumerate(records) if r["event"] == "RunStarted")
    after = [r["step"] for r in records[second:] if r["event"] == "StepEvent"]
    assert after[0] == checkpoint.step + 1  # on from the checkpoint
    resumed.send_signal(signal.SIGINT)
    _, stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["event"] == "RunFinished" and records[-1]["reason"] == "stopped"
    assert records[-2]["event"] == "CheckpointEvent" and records[-2]["reason"] == "stop"
    assert (tmp_path / "run" / "adapters.safetensors").exists()


def test_nodes_combine_to_total_watts_and_the_hottest_node_whose_emergency_stops_all():
    from tscu_tui.engine.telemetry import Governor, GovernorLimits
    from tscu_tui.engine.train.parallel import combine_nodes

    # power W, temperature C, energy J, dt s, compute s per rank; NaN = not measured
    rows = np.array([[12.0, 60.0, 100.0, 0.5, 0.20], [14.0, 88.0, 120.0, 0.6, 0.25]])
    agreed = combine_nodes(rows)
    assert (agreed.cluster.power_w, agreed.cluster.temp_c, agreed.cluster.energy_j) == (
        26.0, 88.0, 220.0)
    assert (agreed.cluster.dt_s, agreed.compute_s) == (0.6, 0.25)  # the slowest rank's
    assert [n.temp_c for n in agreed.nodes] == [60.0, 88.0]
    governor = Governor(GovernorLimits(emergency_temp_c=85.0))
    governor.update(agreed.cluster.power_w, agreed.cluster.temp_c, agreed.cluster.dt_s)
    assert governor.emergency  # one hot node: every rank sees it, every rank stops
    partial = combine_nodes(np.array([[12.0, np.nan, 100.0, 0.5, 0.2],
                                      [np.nan, 50.0, np.nan, 0.5, 0.2]]))
    assert partial.cluster.power_w is None and partial.cluster.energy_j is None
    assert partial.cluster.temp_c == 50.0  # a partial sum would understate the watts


FAKE_SSH = Path(__file__).resolve().parent / "fake_ssh"


def test_ctrl_c_on_a_hostfile_run_stops_remote_ranks_with_a_checkpoint_fake_ssh(demo_data,
                                                                               tmp_path):
    """Two ranks on "remote" hosts: mlx.launch runs each through `ssh -tt HOST`, here
    tests/fake_ssh/ssh (no sshd can run here; it runs the command on this machine, on a
    terminal of its own, and hangs that terminal up when it dies, as ssh does). Ctrl+C
    once went to the ssh clients, which died and took the ranks with them, without a
    checkpoint; now it reaches each rank through its terminal, and they stop together."""
    from tscu_tui.engine.distributed.launch import _free_ports

    port = _free_ports(2) + 1  # the watchdog one below the ring's two ports
    hostfile = tmp_path / "hosts.json"
    hostfile.write_text(json.dumps({"backend": "ring", "hosts": [
        {"ssh": "fake-host-a", "ips": ["127.0.0.1"]},
        {"ssh": "fake-host-b", "ips": ["127.0.0.1"]}]}))
    file = _config_file(demo_data, tmp_path / "run", "train.max_steps=500",
                        "train.eval_steps=1000", "train.save_steps=1000",
                        f"distributed.port={port}")
    env = _env(PATH=os.pathsep.join([str(FAKE_SSH), os.environ["PATH"]]))
    launch = _tscu("train", "--config", str(file), "--hostfile", str(hostfile), env=env)
    events = tmp_path / "run" / "events.jsonl"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        text = events.read_text() if events.exists() else ""
        if '"step": 2' in text and '"StepEvent"' in text:
            break
        assert launch.poll() is None, launch.communicate()
        time.sleep(0.05)
    launch.send_signal(signal.SIGINT)
    _, stderr = launch.communicate(timeout=120)
    assert launch.returncode == 0, stderr
    records = [json.loads(line) for line in events.read_text().splitlines()]
    assert records[-1]["event"] == "RunFinished" and records[-1]["reason"] == "stopped"
    assert records[-2]["event"] == "CheckpointEvent" and records[-2]["reason"] == "stop"
    assert latest_checkpoint(tmp_path / "run").step == records[-1]["step"] < 500
    assert _errors(stderr) == []


FAULTS = Path(__file__).resolve().parent / "faults"  # file-boundary fault injection


def test_rank_0_killed_while_writing_a_checkpoint_the_others_name_the_one_on_disk(
        demo_data, tmp_path):
    """Rank 0 dies (SIGKILL, injected at the file boundary) in the middle of writing the
    checkpoint of step 6. Rank 1 once said "the last checkpoint (step 6) is intact" (it
    counted the checkpoint as it began); the one on disk, which resumes, is step 3's."""
    file = _config_file(demo_data, tmp_path / "run", "train.max_steps=12",
                        "train.save_steps=3", "train.eval_steps=100")
    env = _env(TSCU_FAULT="kill@6", TSCU_FAULT_RANK="0")
    env["PYTHONPATH"] = os.pathsep.join([str(FAULTS), env["PYTHONPATH"]])
    launch = _tscu("train", "--config", str(file), "--launch", "2", env=env)
    _, stderr = launch.communicate(timeout=300)
    assert launch.returncode == 1
    errors = _errors(stderr)
    assert len(errors) == 1, stderr
    assert "rank 0 was lost at step 6" in errors[0]
    assert errors[0].endswith("the last checkpoint (step 3) is intact"), errors[0]
    assert latest_checkpoint(tmp_path / "run").step == 3
    records = [json.loads(line) for line in
               (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    assert records[-1]["event"] == "RunFailed" and "(step 3) is intact" in records[-1]["reason"]
