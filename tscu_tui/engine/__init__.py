"""The tscu engine: config, data, models, training and control.

Nothing in this package imports textual or rich (tests/test_engine_isolation.py
proves it), so it runs headless and inside any UI. Heavy libraries (mlx,
datasets, transformers) are imported by the submodules that need them, never
here, so `tscu --help` stays fast.
"""
