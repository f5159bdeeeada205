"""Runs on disk, read back: finding and summarising them (`reader`), following a
live run's events (`follow`) and sampling base vs base + adapter (`sample`);
`files` names the files of a run folder, for the writer (`train`) and readers alike.

It may import `models` (to load a base for sampling), `data` (the chat template a
run's dataset was prepared with), `config` and the shared vocabulary; it never
writes a run and never imports `train`.
"""
