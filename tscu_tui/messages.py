"""Textual messages that carry engine events to the UI.

The engine calls an `EventBridge` from its worker thread. The bridge buffers
the event and posts one `EngineEvents` message; a newer message replaces an
unhandled older one (`can_replace`), and the handler drains every buffered
event at once. So nothing is lost, the UI handles at most one batch per
refresh however fast the engine runs, and the engine never waits on the UI.
"""

from __future__ import annotations

import threading
from collections import deque

from textual.message import Message
from textual.message_pump import MessagePump

from tscu_tui.engine.events import Event


class EventBridge:
    """An engine event sink that forwards to a Textual message pump."""

    def __init__(self, target: MessagePump) -> None:
        self._target = target
        self._buffer: deque[Event] = deque()
        self._lock = threading.Lock()

    def __call__(self, event: Event) -> None:
        with self._lock:
            self._buffer.append(event)
        self._target.post_message(EngineEvents(self))

    def drain(self) -> list[Event]:
        with self._lock:
            events = list(self._buffer)
            self._buffer.clear()
        return events


class EngineEvents(Message):
    """Some engine events are waiting in `bridge`; call `bridge.drain()`."""

    def __init__(self, bridge: EventBridge) -> None:
        super().__init__()
        self.bridge = bridge

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, EngineEvents) and message.bridge is self.bridge


class ConfigChanged(Message):
    """The app's config was edited, saved or replaced by a preset."""
