"""The names of the files in a run folder: what `train` writes and everything else reads.

One place for them, so the readers (`runs`, `hub`) need nothing from `train`.
"""

from pathlib import Path

ADAPTER_WEIGHTS = "adapters.safetensors"
ADAPTER_CONFIG = "adapter_config.json"
METRICS_FILE = "mlx_tscu_training_metrics.json"
ANALYSIS_FILE = "mlx_tscu_analysis.json"
SUMMARY_FILE = "mlx_training_summary.json"
CONFIG_FILE = "mlx_config.json"
ARGS_FILE = "training_args.json"
EVENTS_FILE = "events.jsonl"
CURVES_FILE = "training_curves.png"  # the end-of-run picture (engine/train/plots.py)
LOG_FILE = Path("logs") / "mlx_training.log"

# An ablation folder (`tscu ablate`): its report, and the runs under runs/.
ABLATION_JSON = "ablation.json"
ABLATION_MD = "ablation.md"
ABLATION_PNG = "ablation.png"
