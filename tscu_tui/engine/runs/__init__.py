"""Runs on disk, read back: finding and summarising them (`reader`), following a
live run's events (`follow`) and sampling base vs base + adapter (`sample`).

It reads what `train` writes, so it may import `train`'s file-name constants,
`models` (to load a base for sampling) and the shared vocabulary; it never
writes a run.
"""
