"""SVG snapshots of the train screen, following a recorded run (deterministic data)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tscu_tui.app import TscuApp
from tscu_tui.engine.config import load_config

RUN = Path(__file__).parents[1] / "data" / "runs" / "demo-simulated"


def watch_app() -> TscuApp:
    return TscuApp(load_config(None), Path("tscu.toml"), watch_dir=RUN.relative_to(Path.cwd())
                   if RUN.is_relative_to(Path.cwd()) else RUN)


async def followed_to_the_end(pilot) -> None:
    deadline = time.monotonic() + 10
    while pilot.app.screen.state != "finished":
        assert time.monotonic() < deadline
        await pilot.pause(0.05)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
def test_train_screen_snapshot(snap_compare, size, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    assert snap_compare(watch_app(), terminal_size=size, run_before=followed_to_the_end)


def test_idle_train_screen_snapshot(snap_compare, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    app = TscuApp(load_config(Path("tscu.toml")), Path("tscu.toml"))
    assert snap_compare(app, terminal_size=(80, 24))


def test_help_screen_snapshot(snap_compare, monkeypatch):
    monkeypatch.chdir(Path(__file__).parents[2])
    app = TscuApp(load_config(Path("tscu.toml")), Path("tscu.toml"))
    assert snap_compare(app, terminal_size=(80, 24), press=["f1"])
