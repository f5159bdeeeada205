"""The training loop and its parts.

`trainer.Trainer` runs one LoRA fine-tune top to bottom (events, failures): it
sets the run up and resumes it (`session`), steps the optimizer (`step`) in the
loop (`loop`), evaluates (`evaluation`) and saves (`run_outputs`). Beside them live
the pieces they are made of: the objective with its SCU penalty (`objective`), the
lambda controller (`scu`), the learning-rate schedule (`schedule`), batch
drawing and the masks each batch carries (`batches`), checkpoints (`checkpoint`),
held-out evaluation of any split (`evaluate`), samples at each evaluation
(`samples`), the event recorder and the run's output files (`recorder`, `outputs`),
LoRA adapters (`lora`), T-SCU in the loop (`thermal`, with what it measures,
`thermal_meter`, the compute share, `duty`, and the wait for a chip to cool after
an emergency stop, `cooldown`; the clock knob, frequency first, `frequency`, and the in-run
search for the least J/token, `energy_profile`), data parallelism across ranks
(`parallel`), the run's length and SCU mode resolved on its data (`run_plan`),
selecting on validation and reporting on test (`selection`), and ablations
(`ablation`, `ablation_stats` with `pairing`, `ablation_report`).
It may import `models`, `data`, `telemetry`, `hub` (the model card), `distributed`,
`report` (TensorBoard, W&B),
`config` and the shared vocabulary (`events`, `errors`, `fileio`); nothing imports
it but commands, screens and benches.
"""
