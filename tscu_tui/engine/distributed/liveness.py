"""The watchdog: heartbeats between the ranks, outside the collectives.

MLX's collectives have no timeout: a rank that hangs leaves the others waiting
forever, and one that dies may be noticed only at the next collective. So the
ranks also talk over their own TCP connections, in a star around rank 0: every
`period_s` each side sends a heartbeat; a connection that closes without a
goodbye means the rank died, a silence longer than `timeout_s` means it hangs
(stopped, swapping, stuck in a driver). Rank 0 relays what it learns to the
others, so every rank hears, within seconds, which rank was lost and calls
`on_loss` once. A rank that fails on its own (an error it reported itself)
says so first, and the others stop quietly.

One thread per rank, one `selectors` loop; it never touches MLX, so it keeps
beating while the trainer computes (MLX releases the GIL) or waits in a
collective.
"""

from __future__ import annotations

import contextlib
import json
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tscu_tui.engine.errors import TscuError


@dataclass(frozen=True)
class Loss:
    """A rank that is gone, why, and whether it said so itself."""

    rank: int
    reason: str
    reported: bool = False  # the rank printed its own error: the others stay quiet


@dataclass
class _Peer:
    rank: int
    sock: socket.socket
    last_seen: float
    buffer: bytes = b""
    done: bool = False  # said goodbye


@dataclass
class _State:
    loss: Loss | None = None
    closing: bool = False
    step: int = 0
    peers: dict[int, _Peer] = field(default_factory=dict)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise TscuError(f"watchdog address {address!r}: expected HOST:PORT")
    return host, int(port)


class Liveness:
    """Heartbeats of one rank; `start()` once the world exists, `close()` at a clean end."""

    def __init__(self, rank: int, size: int, address: str, on_loss: Callable[[Loss], None],
                 *, timeout_s: float = 10.0, period_s: float = 0.5,
                 connect_timeout_s: float = 60.0) -> None:
        self.rank, self.size = rank, size
        self.host, self.port = parse_address(address)
        self.on_loss = on_loss
        self.timeout_s, self.period_s = timeout_s, min(period_s, timeout_s / 4)
        self.connect_timeout_s = connect_timeout_s
        self._state = _State()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._server: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lost = threading.Event()

    # ------------------------------------------------------------------ API
    def start(self) -> None:
        if self.rank == 0:
            server = socket.create_server((self._bind_host(), self.port), reuse_port=False)
            self._server = server
            # Every rank is up (mx.distributed.init waited for them): wait for all to
            # connect, so that anything that goes wrong from here on reaches them.
            server.settimeout(self.connect_timeout_s)
            while len(self._state.peers) < self.size - 1:
                try:
                    self._accept()
                except TimeoutError:
                    missing = sorted(set(range(1, self.size)) - set(self._state.peers))
                    server.close()
                    raise TscuError(f"rank {missing[0]} never reached the watchdog at "
                                    f"{self.host}:{self.port} within "
                                    f"{self.connect_timeout_s:g} s") from None
            server.setblocking(False)
            self._selector.register(server, selectors.EVENT_READ)
        else:
            sock = self._connect()
            self._add_peer(0, sock)
            self._send(sock, {"t": "hello", "rank": self.rank})
        self._thread = threading.Thread(target=self._loop, name=f"tscu-watchdog-{self.rank}",
                                        daemon=True)
        self._thread.start()

    def set_step(self, step: int) -> None:
        self._state.step = step

    def fail(self, reason: str) -> None:
        """This rank failed and said why itself: the others stop without a line of their own."""
        self._broadcast({"t": "fail", "rank": self.rank, "reason": reason})
        self.close(goodbye=False)

    def close(self, goodbye: bool = True) -> None:
        with self._lock:
            if self._state.closing:
                return
            self._state.closing = True
        if goodbye:
            self._broadcast({"t": "bye", "rank": self.rank})
        if self._thread is not None:
            self._thread.join(timeout=2 * self.period_s + 1)
        for peer in list(self._state.peers.values()):
            peer.sock.close()
        if self._server is not None:
            self._server.close()

    @property
    def loss(self) -> Loss | None:
        return self._state.loss

    def wait_for_loss(self, timeout_s: float) -> Loss | None:
        self._lost.wait(timeout_s)
        return self._state.loss

    # ------------------------------------------------------------------ wiring
    def _bind_host(self) -> str:
        return "127.0.0.1" if self.host in ("127.0.0.1", "localhost") else ""

    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout_s
        while True:
            try:
                return socket.create_connection((self.host, self.port), timeout=2.0)
            except OSError as exc:
                if time.monotonic() > deadline:
                    raise TscuError(f"rank {self.rank}: cannot reach rank 0's watchdog at "
                                    f"{self.host}:{self.port} ({exc})") from None
                time.sleep(0.2)

    def _add_peer(self, rank: int, sock: socket.socket) -> None:
        sock.setblocking(False)
        peer = _Peer(rank=rank, sock=sock, last_seen=time.monotonic())
        self._state.peers[rank] = peer
        self._selector.register(sock, selectors.EVENT_READ, peer)

    def _send(self, sock: socket.socket, message: dict[str, object]) -> None:
        data = (json.dumps(message) + "\n").encode()
        with self._send_lock:  # the loop and the trainer's thread both send
            try:
                sock.settimeout(1.0)
                sock.sendall(data)
            except OSError:
                pass  # a broken connection is noticed by the reader
            finally:
                with contextlib.suppress(OSError):
                    sock.setblocking(False)

    def _broadcast(self, message: dict[str, object], skip: int | None = None) -> None:
        for peer in list(self._state.peers.values()):
            if peer.rank != skip and not peer.done:
                self._send(peer.sock, message)

    # ------------------------------------------------------------------ the loop
    def _loop(self) -> None:
        next_beat = 0.0
        while not self._state.closing and self._state.loss is None:
            for key, _ in self._selector.select(timeout=self.period_s / 2):
                if key.fileobj is self._server:
                    self._accept()
                else:
                    self._read(key.data)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.period_s
                self._broadcast({"t": "hb", "rank": self.rank, "step": self._state.step})
                self._check_silence(now)

    def _accept(self) -> None:
        assert self._server is not None
        try:
            sock, _ = self._server.accept()
        except TimeoutError:
            raise
        except OSError:
            return
        sock.settimeout(5.0)
        try:  # the first line names the rank (read bytewise: what follows stays queued)
            line = b""
            while not line.endswith(b"\n"):
                byte = sock.recv(1)
                if not byte:
                    raise OSError("closed before saying hello")
                line += byte
            rank = int(json.loads(line)["rank"])
        except (OSError, ValueError, KeyError, TypeError):
            sock.close()
            return
        self._add_peer(rank, sock)

    def _read(self, peer: _Peer) -> None:
        try:
            data = peer.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._selector.unregister(peer.sock)
            if not peer.done:
                self._lose(Loss(peer.rank, "its process ended without a word (killed or "
                                           "crashed)"))
            return
        peer.last_seen = time.monotonic()
        peer.buffer += data
        *lines, peer.buffer = peer.buffer.split(b"\n")
        for line in lines:
            try:
                message = json.loads(line)
            except ValueError:
                continue  # not ours (a port scanner, a stray client): ignore it
            if isinstance(message, dict):
                with contextlib.suppress(KeyError, TypeError, ValueError):
                    self._handle(peer, message)

    def _handle(self, peer: _Peer, message: dict[str, object]) -> None:
        kind = message.get("t")
        if kind == "bye":
            peer.done = True
            if self.rank == 0:
                return
            # rank 0 ended cleanly: nothing more to watch
            self._state.closing = True
        elif kind == "fail":
            self._lose(Loss(int(message["rank"]), str(message["reason"]),  # type: ignore[arg-type]
                            reported=True), relay=message)
        elif kind == "lost":
            self._lose(Loss(int(message["rank"]), str(message["reason"])))  # type: ignore[arg-type]

    def _check_silence(self, now: float) -> None:
        for peer in list(self._state.peers.values()):
            silent = now - peer.last_seen
            if not peer.done and silent > self.timeout_s:
                self._lose(Loss(peer.rank, f"no heartbeat for {silent:.0f} s (hung or "
                                           "stopped)"))
                return

    def _lose(self, loss: Loss, relay: dict[str, object] | None = None) -> None:
        with self._lock:
            if self._state.loss is not None or self._state.closing:
                return
            self._state.loss = loss
        if self.rank == 0:  # tell the others before anyone acts on it
            message = relay or {"t": "lost", "rank": loss.rank, "reason": loss.reason}
            self._broadcast(message, skip=loss.rank)
        try:
            self.on_loss(loss)
        finally:  # waiters wake once the loss has been reported
            self._lost.set()
