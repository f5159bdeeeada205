"""`tscu train --launch N` / `--hostfile FILE`: start the ranks through mlx.launch and see
them through to the end.

mlx.launch starts one process per rank (locally, or over ssh from a hostfile),
forwards their output and, when one exits with an error, terminates the
others. What it does not do, this does: it tells every rank how many ranks
there are and where rank 0's watchdog listens (so a world of size 1 is an
error and a lost rank is named), picks free ports on this machine, gives each
local rank its share of the cores' BLAS threads, hands the ranks the run's
watchdog secret (through the environment: on this machine mlx.launch's own, so
it is on no command line; over ssh, mlx.launch's --env), forwards Ctrl+C to the
ranks (they stop together with a checkpoint: a rank on this machine gets the
signal itself; one behind ssh gets a ^C typed into the terminal that
`ssh -tt` opened for it, since a signal to the ssh client would cut the
connection and kill the rank without a checkpoint), filters the ring backend's repeated
socket messages, kills ranks that are left behind (a stopped process never
obeys mlx.launch's SIGTERM), and turns the ranks' end into an exit status:
mlx.launch itself always exits 0.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from tscu_tui.engine.config.schema import DistributedConfig
from tscu_tui.engine.distributed.liveness import new_secret
from tscu_tui.engine.distributed.world import (
    BACKEND_ENV,
    HEARTBEAT_ENV,
    SECRET_ENV,
    WATCHDOG_ENV,
    WORLD_ENV,
)
from tscu_tui.engine.errors import TscuError

RING_PORT = 32323  # mlx.launch's default
_NOISE = re.compile(r"^(\[ring\] |.*\[WARN\] Node with rank \d+ (was killed|exited with code))")


@dataclass(frozen=True)
class LaunchPlan:
    ranks: int
    hosts: list[str]  # ssh host per rank; 127.0.0.1 on this machine
    hostfile: Path | None
    backend: str  # 'auto' lets mlx.launch decide
    port: int  # first ring port; 0 = pick free ones here
    heartbeat_timeout_s: float

    @property
    def local(self) -> bool:
        return all(h in ("127.0.0.1", "localhost") for h in self.hosts)

    @property
    def without_ssh(self) -> bool:
        """Every rank a child of mlx.launch here (it runs any other host name over ssh,
        "localhost" too)."""
        return all(h == "127.0.0.1" for h in self.hosts)


def read_hostfile(path: Path) -> tuple[list[str], str, str]:
    """(ssh host per rank, backend named in the file, first IP of rank 0) from mlx.launch's
    JSON hostfile; one line naming the file and what is wrong otherwise."""
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise TscuError(f"{path}: cannot read the hostfile ({exc.strerror})") from None
    except ValueError as exc:
        raise TscuError(f"{path}: not a JSON hostfile ({exc})") from None
    hosts = data.get("hosts") if isinstance(data, dict) else data
    if not isinstance(hosts, list) or not hosts:
        raise TscuError(f"{path}: expected a list of hosts, or an object with \"hosts\"")
    names, first_ip = [], ""
    for i, host in enumerate(hosts):
        if not isinstance(host, dict) or not isinstance(host.get("ssh"), str):
            raise TscuError(f"{path}: host {i} needs an \"ssh\" name")
        names.append(host["ssh"])
        if i == 0 and host.get("ips"):
            first_ip = str(host["ips"][0])
    backend = data.get("backend", "") if isinstance(data, dict) else ""
    return names, str(backend or ""), first_ip


def plan_launch(ranks: int | None, hostfile: str | None,
                config: DistributedConfig) -> LaunchPlan | None:
    """What to launch, from the command line (which wins) and `[distributed]`; None for
    a plain one-process run."""
    ranks = ranks if ranks is not None else config.ranks
    hostfile = hostfile if hostfile is not None else config.hostfile
    if hostfile and ranks > 1:
        raise TscuError("give either --launch N (ranks on this machine) or --hostfile FILE "
                        "(one rank per host), not both")
    if hostfile:
        path = Path(hostfile)
        hosts, named, _ = read_hostfile(path)
        backend = config.backend if config.backend != "auto" else (named or "auto")
        return LaunchPlan(len(hosts), hosts, path, backend, config.port or RING_PORT,
                          config.heartbeat_timeout_seconds)
    if ranks <= 1:
        return None
    return LaunchPlan(ranks, ["127.0.0.1"] * ranks, None, config.backend, config.port,
                      config.heartbeat_timeout_seconds)


def _free_ports(count: int) -> int:
    """A port P with P .. P+count free on this machine (P for the watchdog)."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            start = probe.getsockname()[1]
        if start + count >= 65535:
            continue
        try:
            for port in range(start, start + count + 1):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
            return start
        except OSError:
            continue
    raise TscuError(f"no {count + 1} free consecutive TCP ports on this machine")


def _mlx_launch() -> list[str]:
    script = Path(sys.executable).parent / "mlx.launch"
    if script.exists():
        return [str(script)]
    found = shutil.which("mlx.launch")
    if found:
        return [found]
    return [sys.executable, "-c", "from mlx._distributed_utils.launch import main; main()"]


def launch_command(plan: LaunchPlan, rank_args: list[str]) -> tuple[list[str], dict[str, str]]:
    """mlx.launch's command line and the environment every rank gets (the secret is on the
    command line only where ssh must carry it)."""
    if plan.local and plan.port == 0:
        watchdog_port = _free_ports(plan.ranks)
    else:
        watchdog_port = (plan.port or RING_PORT) - 1
    ring_port = watchdog_port + 1
    if plan.hostfile is not None:
        _, _, rank0_ip = read_hostfile(plan.hostfile)
        where = ["--hostfile", str(plan.hostfile)]
    else:
        rank0_ip = "127.0.0.1"
        where = ["--hosts", "127.0.0.1", "-n", str(plan.ranks)]
    rank0_ip = rank0_ip or plan.hosts[0]
    env = {WORLD_ENV: str(plan.ranks), BACKEND_ENV: plan.backend,
           WATCHDOG_ENV: f"{rank0_ip}:{watchdog_port}",
           HEARTBEAT_ENV: f"{plan.heartbeat_timeout_s:g}", SECRET_ENV: new_secret()}
    if plan.local and "TSCU_BLAS_THREADS" not in os.environ:
        env["TSCU_BLAS_THREADS"] = str(max(1, (os.cpu_count() or 1) // plan.ranks))
    command = [*_mlx_launch(), *where, "--starting-port", str(ring_port)]
    if plan.backend != "auto":
        command += ["--backend", plan.backend]
    for key, value in env.items():
        if key != SECRET_ENV or not plan.without_ssh:  # else: mlx.launch's environment
            command += ["--env", f"{key}={value}"]
    command += ["--", sys.executable, "-m", "tscu_tui", *rank_args]
    return command, env


class Launch:
    """One mlx.launch run, supervised; `wait()` returns the exit status for the shell."""

    def __init__(self, plan: LaunchPlan, rank_args: list[str], run_dir: Path,
                 out: TextIO | None = None, err: TextIO | None = None) -> None:
        self.plan, self.run_dir = plan, run_dir
        self.out, self.err = out or sys.stdout, err or sys.stderr
        self.command, self.env = launch_command(plan, rank_args)
        events = run_dir / "events.jsonl"
        self._events_start = events.stat().st_size if events.exists() else 0
        self.error_printed = False
        self._ranks: dict[int, int] = {}  # pid -> rank (-1: not known)
        self._gone_since: float | None = None
        self._quiet = False

    def start(self) -> None:
        # Its own session: Ctrl+C reaches this process alone, which forwards it to the
        # ranks (mlx.launch would die of it and orphan them). stdin stays an open pipe:
        # mlx.launch polls it and would spin on /dev/null.
        env = {**os.environ, SECRET_ENV: self.env[SECRET_ENV]} if self.plan.without_ssh \
            else None
        self.process = subprocess.Popen(self.command, stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        start_new_session=True, env=env)
        self._pumps = [threading.Thread(target=self._pump, args=(pipe, sink), daemon=True)
                       for pipe, sink in ((self.process.stdout, self.out),
                                          (self.process.stderr, self.err))]
        for pump in self._pumps:
            pump.start()

    def _pump(self, pipe: object, sink: TextIO) -> None:
        for raw in iter(pipe.readline, b""):  # type: ignore[attr-defined]
            line = raw.decode(errors="replace")
            if _NOISE.match(line):
                continue
            if line.startswith("tscu: error:"):
                self.error_printed = True
            sink.write(line)
            sink.flush()

    def rank_pids(self) -> dict[int, int]:
        """pid -> rank of the rank processes seen so far (mlx.launch's children)."""
        import psutil

        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.Error:
            return self._ranks
        for child in children:  # a rank not known yet may not have exec'd python yet
            if self._ranks.get(child.pid, -1) < 0:
                try:
                    self._ranks[child.pid] = int(child.environ().get("MLX_RANK", -1))
                except (psutil.Error, ValueError):
                    self._ranks[child.pid] = -1
        return self._ranks

    def interrupt(self) -> None:
        """Ctrl+C: every rank asked to stop (they agree on it and save a checkpoint). A
        rank here gets SIGINT; mlx.launch's other children are ssh clients, which a
        signal would kill (and the rank with them), so those ranks get ^C through
        mlx.launch's stdin, which it copies to every rank's terminal."""
        for pid, rank in self.rank_pids().items():
            if self.plan.without_ssh or rank >= 0:
                _signal(pid, signal.SIGINT)
        if not self.plan.without_ssh and self.process.stdin is not None:
            with contextlib.suppress(OSError, ValueError):
                self.process.stdin.write(b"\x03")
                self.process.stdin.flush()

    def _reap_stragglers(self) -> None:
        """Once rank 0 is gone the others have 5 s to follow (a stopped process never obeys
        mlx.launch's SIGTERM, and mlx.launch waits for it forever); any rank gone, a minute."""
        ranks = self.rank_pids()
        gone = [pid for pid in ranks if not _alive(pid)]
        if not gone:
            return
        now = time.monotonic()
        if self._gone_since is None:
            self._gone_since = now
        rank0_gone = any(ranks[pid] == 0 for pid in gone)
        grace = 5.0 if rank0_gone else max(60.0, 3 * self.plan.heartbeat_timeout_s)
        if now - self._gone_since > grace:
            for pid in ranks:
                if pid not in gone:
                    _signal(pid, signal.SIGKILL)

    def _quieten_launcher(self) -> bool:
        """mlx.launch's per-rank I/O threads poll in a loop (select on a child's stdin pipe,
        which is always writable) and take ~30% of a core: measured on 2 cores, that is
        taken from the ranks. Once every rank runs (so none inherits it), its threads
        drop to nice 19; forwarding output needs little CPU."""
        if len(self.rank_pids()) < self.plan.ranks:
            return False
        import psutil

        with contextlib.suppress(psutil.Error, OSError):
            for thread in psutil.Process(self.process.pid).threads():
                os.setpriority(os.PRIO_PROCESS, thread.id, 19)
        return True

    def tick(self) -> None:
        """Supervise once (call every fraction of a second while the launch runs)."""
        self._quiet = self._quiet or self._quieten_launcher()
        self._reap_stragglers()

    def wait(self) -> int:
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *_: self.interrupt()) if main else None
        try:
            while self.process.poll() is None:
                self.tick()
                time.sleep(0.2)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        for pump in self._pumps:
            pump.join(timeout=5)
        return self._outcome()

    def _outcome(self) -> int:
        """0 when rank 0 recorded the run's end as finished; else 1, with one line when no
        rank said what went wrong (rank 0 killed: its events end mid-run, so they get
        an end record here, and `tscu watch` stops following)."""
        events = self.run_dir / "events.jsonl"
        records = []
        if events.exists():
            with events.open("rb") as handle:
                handle.seek(self._events_start)
                text = handle.read().decode(errors="replace")
            for line in text.splitlines():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        last = records[-1]["event"] if records else None
        if last == "RunFinished":
            return 0
        if last != "RunFailed":
            step = max((r.get("step") or 0 for r in records), default=0)
            reason = ("rank 0 ended without finishing the run (killed or crashed); "
                      f"{_last_checkpoint(self.run_dir)}")
            if records and self.plan.local:
                with events.open("a", encoding="utf-8") as handle:
                    if not text.endswith("\n"):
                        handle.write("\n")
                    handle.write(json.dumps({"event": "RunFailed", "step": step,
                                             "reason": reason, "rank": 0}) + "\n")
            if not self.error_printed:
                self.err.write(f"tscu: error: {reason}\n")
        elif not self.error_printed:
            self.err.write(f"tscu: error: {records[-1].get('reason', 'the run failed')}\n")
        self.err.flush()
        return 1


def _last_checkpoint(run_dir: Path) -> str:
    """What a killed rank 0 left: its newest complete checkpoint (they are written whole
    or not at all), in the words of the run's one line."""
    folder = run_dir / "checkpoints"
    steps = [int(p.name[5:]) for p in folder.glob("step_*")
             if p.name[5:].isdigit() and (p / "state.json").is_file()] if folder.is_dir() else []
    return (f"the last checkpoint (step {max(steps)}) is intact" if steps
            else "no checkpoint was written yet")


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, sig)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
