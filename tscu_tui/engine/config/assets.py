"""Files that ship inside the package: the embedded model, the demo corpus, presets."""

from pathlib import Path

ASSETS_DIR = Path(__file__).resolve().parents[2] / "assets"
EMBEDDED_MODEL_DIR = ASSETS_DIR / "tiny-qwen3-4bit"
DEMO_CORPUS = ASSETS_DIR / "demo" / "unicode_chars.jsonl"
PRESETS_DIR = ASSETS_DIR / "presets"
