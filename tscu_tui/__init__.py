"""tscu: LoRA fine-tuning on MLX under a Thermodynamic Shannon Control Unit."""

__version__ = "0.1.0"
