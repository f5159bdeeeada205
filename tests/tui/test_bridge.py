"""Engine events reach the UI through a coalescing bridge: none lost, few messages."""

from __future__ import annotations

import threading

import pytest
from textual.app import App

from tscu_tui.engine.events import LogEvent
from tscu_tui.messages import EngineEvents, EventBridge


class Collector(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.bridge = EventBridge(self)
        self.batches: list[int] = []
        self.received: list[int] = []

    def on_engine_events(self, message: EngineEvents) -> None:
        events = message.bridge.drain()
        self.batches.append(len(events))
        self.received.extend(e.step for e in events)


@pytest.mark.asyncio
async def test_a_burst_from_a_thread_arrives_whole_in_order_and_coalesced():
    app = Collector()
    async with app.run_test() as pilot:
        def burst() -> None:  # the engine thread never waits on the UI
            for step in range(5000):
                app.bridge(LogEvent(level="info", message="tick", step=step))

        thread = threading.Thread(target=burst)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive()
        while len(app.received) < 5000:
            await pilot.pause(0.01)
    assert app.received == list(range(5000))
    # Far fewer UI handler calls than events: older pending messages were replaced.
    assert len([b for b in app.batches if b]) < 1000
