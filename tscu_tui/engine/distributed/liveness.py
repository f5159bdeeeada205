"""The watchdog: heartbeats between the ranks, outside the collectives.

MLX's collectives have no timeout: a rank that hangs leaves the others waiting
forever, and one that dies may be noticed only at the next collective. So the
ranks also talk over their own TCP connections, in a star around rank 0: every
`period_s` each side sends a heartbeat; a connection that closes without a
goodbye means the rank died, a silence longer than `timeout_s` means it hangs
(stopped, swapping, stuck in a driver). Rank 0 relays what it learns to the
others, so every rank hears, within seconds, which rank was lost and calls
`on_loss` once. A rank that fails on its own (an error it reported itself)
says so first, and the others stop quietly. Rank 0 also tells the others each
checkpoint it has completed, so a rank that reports rank 0 lost names the last
checkpoint that is really on disk.

Rank 0 listens on the address the ranks were given (never every interface),
and only ranks of this run get in: each connection is challenged with a nonce
and must answer with an HMAC of it under the run's secret (which the launcher
passes through the ranks' environment, never a file or a log), for a rank
number not already connected. Until then a connection is only a buffer with a
deadline in the same loop: a client that sends its hello slowly, or never,
costs no heartbeat, and one that cannot prove itself is closed.

One thread per rank, one `selectors` loop; it never touches MLX, so it keeps
beating while the trainer computes (MLX releases the GIL) or waits in a
collective.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tscu_tui.engine.errors import TscuError

HELLO_TIMEOUT_S = 5.0  # a connection must prove itself within this
MAX_HELLO_BYTES = 4096  # ... in at most this much


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
class _Pending:
    """A connection to rank 0 that has not proved itself yet."""

    sock: socket.socket
    nonce: str
    deadline: float
    buffer: bytes = b""


@dataclass
class _State:
    loss: Loss | None = None
    closing: bool = False
    step: int = 0
    checkpoint: int | None = None  # the last checkpoint rank 0 completed
    peers: dict[int, _Peer] = field(default_factory=dict)


def parse_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise TscuError(f"watchdog address {address!r}: expected HOST:PORT")
    return host, int(port)


def new_secret() -> str:
    """A per-run secret for the launcher to hand every rank."""
    return secrets.token_hex(32)


def proof(secret: bytes, rank: int, nonce: str) -> str:
    return hmac.new(secret, f"tscu-watchdog:{rank}:{nonce}".encode(), hashlib.sha256).hexdigest()


class Liveness:
    """Heartbeats of one rank; `start()` once the world exists, `close()` at a clean end."""

    def __init__(self, rank: int, size: int, address: str, on_loss: Callable[[Loss], None],
                 *, secret: str, timeout_s: float = 10.0, period_s: float = 0.5,
                 connect_timeout_s: float = 60.0) -> None:
        if not secret:
            raise TscuError("the watchdog needs the run's secret (tscu's launcher sets it)")
        self.rank, self.size = rank, size
        self.host, self.port = parse_address(address)
        self.on_loss = on_loss
        self._secret = secret.encode()
        self.timeout_s, self.period_s = timeout_s, min(period_s, timeout_s / 4)
        self.connect_timeout_s = connect_timeout_s
        self._state = _State()
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._selector = selectors.DefaultSelector()
        self._server: socket.socket | None = None
        self._pending: dict[socket.socket, _Pending] = {}
        self._thread: threading.Thread | None = None
        self._lost = threading.Event()

    # ------------------------------------------------------------------ API
    def start(self) -> None:
        if self.rank == 0:
            self._listen()
        else:
            sock = self._connect()
            self._add_peer(0, sock, self._introduce(sock))
        self._thread = threading.Thread(target=self._loop, name=f"tscu-watchdog-{self.rank}",
                                        daemon=True)
        self._thread.start()

    def set_step(self, step: int) -> None:
        self._state.step = step

    def checkpointed(self, step: int) -> None:
        """Rank 0 completed the checkpoint of `step`: the others hear it at once."""
        self._state.checkpoint = step
        if self.rank == 0:
            self._broadcast({"t": "ckpt", "step": step})

    @property
    def checkpoint(self) -> int | None:
        """The last checkpoint rank 0 said it completed (None: none yet)."""
        return self._state.checkpoint

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
        for pending in list(self._pending.values()):
            pending.sock.close()
        if self._server is not None:
            self._server.close()

    @property
    def loss(self) -> Loss | None:
        return self._state.loss

    def wait_for_loss(self, timeout_s: float) -> Loss | None:
        self._lost.wait(timeout_s)
        return self._state.loss

    # ------------------------------------------------------------------ wiring
    def _listen(self) -> None:
        """Rank 0: listen on the ranks' address alone; wait until every rank has proved
        itself (they are all up: mx.distributed.init waited for them), so that anything
        that goes wrong from here on reaches them."""
        try:
            server = socket.create_server((self.host, self.port), reuse_port=False)
        except OSError as exc:
            raise TscuError(f"rank 0 cannot listen for the watchdog on {self.host}:"
                            f"{self.port} ({exc.strerror or exc}): is {self.host} this "
                            "machine's address?") from None
        server.setblocking(False)
        self._server = server
        self._selector.register(server, selectors.EVENT_READ)
        deadline = time.monotonic() + self.connect_timeout_s
        while len(self._state.peers) < self.size - 1:
            if time.monotonic() > deadline:
                missing = sorted(set(range(1, self.size)) - set(self._state.peers))
                self.close(goodbye=False)
                raise TscuError(f"rank {missing[0]} never reached the watchdog at "
                                f"{self.host}:{self.port} within "
                                f"{self.connect_timeout_s:g} s")
            self._poll(0.1)

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

    def _introduce(self, sock: socket.socket) -> bytes:
        """Answer rank 0's challenge; returns what arrived after it (heartbeats)."""
        sock.settimeout(HELLO_TIMEOUT_S)
        data = b""
        try:
            while b"\n" not in data and len(data) < MAX_HELLO_BYTES:
                chunk = sock.recv(MAX_HELLO_BYTES)
                if not chunk:
                    break
                data += chunk
            line, _, rest = data.partition(b"\n")
            nonce = str(json.loads(line)["nonce"])
        except (OSError, ValueError, KeyError, TypeError):
            sock.close()
            raise TscuError(f"rank {self.rank}: rank 0's watchdog at {self.host}:{self.port} "
                            "did not answer as tscu's does") from None
        self._send(sock, {"t": "hello", "rank": self.rank,
                          "proof": proof(self._secret, self.rank, nonce)})
        return rest

    def _add_peer(self, rank: int, sock: socket.socket, buffer: bytes = b"") -> None:
        sock.setblocking(False)
        peer = _Peer(rank=rank, sock=sock, last_seen=time.monotonic(), buffer=buffer)
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
            self._poll(self.period_s / 2)
            now = time.monotonic()
            if now >= next_beat:
                next_beat = now + self.period_s
                self._broadcast({"t": "hb", "rank": self.rank, "step": self._state.step})
                self._check_silence(now)

    def _poll(self, timeout_s: float) -> None:
        """One round of the selector: new connections, hellos, peers' messages."""
        for key, _ in self._selector.select(timeout=timeout_s):
            if key.fileobj is self._server:
                self._accept()
            elif isinstance(key.data, _Pending):
                self._read_hello(key.data)
            else:
                self._read(key.data)
        now = time.monotonic()
        for pending in [p for p in self._pending.values() if now > p.deadline]:
            self._drop(pending)  # too slow to say who it is: not one of ours

    def _accept(self) -> None:
        assert self._server is not None
        try:
            sock, _ = self._server.accept()
        except OSError:
            return
        pending = _Pending(sock=sock, nonce=secrets.token_hex(16),
                           deadline=time.monotonic() + HELLO_TIMEOUT_S)
        try:
            sock.setblocking(False)
            sock.send((json.dumps({"t": "challenge", "nonce": pending.nonce}) + "\n").encode())
        except OSError:
            sock.close()
            return
        self._pending[sock] = pending
        self._selector.register(sock, selectors.EVENT_READ, pending)

    def _read_hello(self, pending: _Pending) -> None:
        """Bytes of a hello, as they come; a rank of this run, proved, becomes a peer."""
        try:
            data = pending.sock.recv(MAX_HELLO_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        pending.buffer += data
        if not data or len(pending.buffer) > MAX_HELLO_BYTES:
            self._drop(pending)
            return
        if b"\n" not in pending.buffer:
            return
        line, _, rest = pending.buffer.partition(b"\n")
        rank = self._proved_rank(line, pending.nonce)
        if rank is None:
            self._drop(pending)
            return
        self._selector.unregister(pending.sock)
        del self._pending[pending.sock]
        self._add_peer(rank, pending.sock, rest)

    def _proved_rank(self, line: bytes, nonce: str) -> int | None:
        """The rank a hello proves with the run's secret, if it is one not yet connected."""
        try:
            hello = json.loads(line)
            rank, given = int(hello["rank"]), str(hello["proof"])
        except (ValueError, KeyError, TypeError):
            return None
        if not 1 <= rank < self.size or rank in self._state.peers:
            return None  # never a second connection for a rank: it would replace the real one
        return rank if hmac.compare_digest(given, proof(self._secret, rank, nonce)) else None

    def _drop(self, pending: _Pending) -> None:
        with contextlib.suppress(KeyError, ValueError):
            self._selector.unregister(pending.sock)
        self._pending.pop(pending.sock, None)
        pending.sock.close()

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
                continue
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
        elif kind == "ckpt" and peer.rank == 0:
            self._state.checkpoint = int(message["step"])  # type: ignore[arg-type]
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
