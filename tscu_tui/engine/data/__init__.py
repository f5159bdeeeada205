"""Dataset preparation: tokenize a corpus once and pack it into fixed-size blocks.

    meta = prepare_dataset(PrepareOptions(dataset="notes.txt", model="tscu-tiny-qwen3",
                                          output_dir=Path("data/notes")))
    data = PreparedDataset.open("data/notes")
    data.blocks("train")        # read-only (n_blocks, block_size) memmap

See documents.py (what a source yields), sources.py (which source a name means),
local.py and hub.py (the readers), packing.py (how documents become blocks) and
store.py (the on-disk format). Heavy libraries load inside functions only. It may
import `models` (for the tokenizer), `config` and the shared vocabulary.
"""

from tscu_tui.engine.data.options import PrepareOptions, PrepareProgress
from tscu_tui.engine.data.prepare import PrepareCancelled, prepare_dataset
from tscu_tui.engine.data.store import DatasetMeta, PreparedDataset, SplitMeta

__all__ = [
    "DatasetMeta",
    "PrepareCancelled",
    "PrepareOptions",
    "PrepareProgress",
    "PreparedDataset",
    "SplitMeta",
    "prepare_dataset",
]
