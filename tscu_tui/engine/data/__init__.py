"""Dataset preparation: tokenize a corpus once and pack it into fixed-size blocks.

    meta = prepare_dataset(PrepareOptions(dataset="notes.txt", model="tscu-tiny-qwen3",
                                          output_dir=Path("data/notes")))
    data = PreparedDataset.open("data/notes")
    data.blocks("train")        # read-only (n_blocks, block_size) memmap
    data.flag_blocks("train")   # per token: trained? segment start? padding?

See documents.py (what a source yields), sources.py (which source a name means),
local.py and hub.py (the readers), chat.py (chat templates and the assistant turns
that train), encoding.py (tokens and their flags), packing.py (how documents become
blocks), examples.py (what meta.json shows of them) and store.py (the on-disk format).
Heavy libraries load inside functions only. It may import `models` (for the
tokenizer), `config` and the shared vocabulary. """

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
