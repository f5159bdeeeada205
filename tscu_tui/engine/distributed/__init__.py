"""Data-parallel training over processes and machines with `mx.distributed`.

- `world`: which rank this process is, of how many, over which backend; a
  world of size 1 where more were asked for is an error, never a silent
  single-process run.
- `collectives`: the few collectives the trainer needs (averaged gradients,
  per-step statistics gathered, rank 0's state broadcast), each run under the
  watchdog.
- `liveness`: the watchdog: heartbeats between the ranks over their own TCP
  connections, so that a rank that dies or hangs stops all of them within
  seconds with one line naming it.
- `launch`: `tscu train --launch N` / `--hostfile FILE` wrap `mlx.launch` and
  supervise the ranks it starts; `launched`: the same from inside the app,
  following rank 0's events.

It may import `config`, `models.runtime` (MLX), `runs` (to follow rank 0's run
folder) and the shared vocabulary; `train` imports it, never the other way round.
"""
