"""The README's screenshots: the four screens as SVG, made from Pilot (no terminal needed).

    python scripts/screenshots.py        # or: make screenshots

Deterministic: the train and results screens follow the recorded run in
tests/data/runs (`tscu watch` of a finished run), the dataset screen shows the
demo corpus prepared into demo_output/screenshot-data, the config screen the
demo preset (its memory line compares with this machine's free memory).
Writes docs/screenshots/{dataset,config,train,results}.svg.
"""

from __future__ import annotations

import asyncio
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # this checkout's tscu, whatever is installed


OUT = ROOT / "docs" / "screenshots"
RUN = Path("tests/data/runs/demo-simulated")
SIZE = (110, 34)


async def shoot(app, name: str, keys: tuple[str, ...], ready=None) -> None:  # type: ignore[no-untyped-def]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press(*keys)
        for _ in range(200):  # up to 10 s for workers (following a run, a preview)
            await pilot.pause(0.05)
            if ready is None or ready(app):
                break
        await pilot.pause(0.3)
        app.save_screenshot(filename=f"{name}.svg", path=str(OUT))
    print(OUT / f"{name}.svg")


async def main() -> None:
    from tscu_tui.app import TscuApp
    from tscu_tui.commands.watch import run_config
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.config.assets import DEMO_CORPUS
    from tscu_tui.engine.data import PrepareOptions, prepare_dataset
    from tscu_tui.engine.models.load import EMBEDDED_MODEL

    os.chdir(ROOT)  # paths in the pictures read relative to the repository
    OUT.mkdir(parents=True, exist_ok=True)
    demo = ROOT / "tscu_tui/assets/presets/demo.toml"
    corpus = str(DEMO_CORPUS.relative_to(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        # A fixed name, so the picture does not change with the temporary folder's.
        data = Path("demo_output/screenshot-data")
        prepare_dataset(PrepareOptions(dataset=corpus, model=EMBEDDED_MODEL, output_dir=data,
                                       block_size=128, max_tokens=60_000,
                                       validation_fraction=0.05, overwrite=True))
        dataset = load_config(demo, [f'data.path="{data}"', f'data.dataset="{corpus}"',
                                     "data.max_tokens=60000"])
        await shoot(TscuApp(dataset, Path(tmp) / "tscu.toml"), "dataset", ("1", "ctrl+e"),
                    lambda app: not app.screen.previewing)
    await shoot(TscuApp(load_config(demo), demo), "config",
                ("2", "down", "down", "down", "down", "down", "tab"))
    watched = run_config(RUN)
    assert watched is not None
    await shoot(TscuApp(watched, Path("tscu.toml"), watch_dir=RUN), "train", (),
                lambda app: app.screen.state == "finished")
    results = load_config(None, [f'output.dir="{RUN}"'])
    await shoot(TscuApp(results, Path("tscu.toml")), "results", ("4", "down", "enter"))


if __name__ == "__main__":
    asyncio.run(main())
