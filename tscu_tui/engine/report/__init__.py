"""Reporters: a run's metrics sent on to the tools people compare runs in.

`report.to` (or `--report-to`) names them: `tensorboard` (event files through
tensorboardX, no TensorFlow or torch) and `wandb` (Weights & Biases, offline when
there is no login or no server). They are event sinks like the recorder, fed by the
trainer on rank 0, so the app and every headless command get the same; `scalars`
says which numbers each event becomes. A reporter that cannot start or that fails
says so in one warning and is dropped; the run never fails for it.

It may import `config`, `runs` (the run folder's file names) and the shared
vocabulary; only `train` imports it.
"""
