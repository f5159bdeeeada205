"""TensorBoard event files for a run, written with tensorboardX (no TensorFlow, no torch).

`RUN_DIR/tensorboard/`: every scalar of `scalars`, the hyperparameters (HParams tab,
ranked by held-out BPT) and at the end the run's `training_curves.png`. `tensorboard
--logdir runs/` shows every run under it side by side. A resumed run drops what the
first attempt logged after its checkpoint (`purge_step`), so the curves do not double.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tscu_tui.engine.config import Config, to_dict
from tscu_tui.engine.events import Event, RunFinished, RunStarted
from tscu_tui.engine.report.base import ReporterUnavailable, Say
from tscu_tui.engine.report.scalars import HPARAM_METRICS, hyperparameters, scalars
from tscu_tui.engine.runs.files import CURVES_FILE

TENSORBOARD_DIR = "tensorboard"
FLUSH_SECONDS = 10  # a live `tensorboard` sees the run within this


class TensorBoardReporter:
    name = "tensorboard"

    def __init__(self, config: Config, run_dir: Path, start_step: int, info: Say) -> None:
        try:
            from tensorboardX import SummaryWriter
        except ImportError:
            raise ReporterUnavailable("tensorboardX is not installed (pip install "
                                      "'tscu[tensorboard]')") from None
        self.config = to_dict(config)
        self.run_dir = run_dir
        self.logdir = run_dir / TENSORBOARD_DIR
        self.writer: Any = SummaryWriter(str(self.logdir), flush_secs=FLUSH_SECONDS,
                                         purge_step=start_step + 1 if start_step else None)
        info(f"TensorBoard: event files in {self.logdir} (tensorboard --logdir "
             f"{run_dir.parent})")

    def __call__(self, event: Event) -> None:
        step = getattr(event, "step", None)
        for tag, value in scalars(event).items():
            self.writer.add_scalar(tag, value, step)
        if isinstance(event, RunStarted):
            self._hparams(event)
        elif isinstance(event, RunFinished):
            self._picture(event.step)
            self.writer.flush()

    def _hparams(self, started: RunStarted) -> None:
        """In this run's own folder (tensorboardX's add_hparams would open another)."""
        from tensorboardX.summary import hparams

        values = hyperparameters(self.config, started)
        for summary in hparams(values, {tag: 0.0 for tag in HPARAM_METRICS}):
            self.writer.file_writer.add_summary(summary)

    def _picture(self, step: int) -> None:
        path = self.run_dir / CURVES_FILE
        if not path.is_file():  # not drawn (the trainer warned already)
            return
        import numpy as np
        from PIL import Image

        with Image.open(path) as image:
            pixels = np.asarray(image.convert("RGB"))
        self.writer.add_image("training_curves", pixels, step, dataformats="HWC")

    def close(self, failed: bool) -> None:
        self.writer.close()
