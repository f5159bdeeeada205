"""The run's adapter as a llama.cpp LoRA GGUF, plus an Ollama Modelfile.

The file is what llama.cpp's own `convert_lora_to_gguf.py` writes for a PEFT
adapter: `general.type = adapter`, `adapter.type = lora`, `adapter.lora.alpha`
(float32; llama.cpp scales by alpha / r), and per adapted weight
`blk.N.<tensor>.weight.lora_a` (numpy (r, in)) and `.lora_b` (numpy (out, r)),
F32, with llama's q/k rows permuted like the base GGUF's (see gguf_base.py).
It applies to the base GGUF the run trained on, which is checked by SHA-256.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.hub.gguf_base import (
    base_gguf,
    lora_pairs,
    permuted_heads,
    supported_architecture,
    to_gguf_order,
)
from tscu_tui.engine.hub.run import RunFolder

ADAPTER_FILE = "adapter.gguf"
MODELFILE = "Modelfile"

#: Ollama's Go templates for the chat formats llama.cpp's GGUFs carry as Jinja, keyed
#: by a marker of the Jinja template, with the stop strings Ollama needs.
_CHATML = ("{{ if .System }}<|im_start|>system\n{{ .System }}<|im_end|>\n{{ end }}"
           "{{ if .Prompt }}<|im_start|>user\n{{ .Prompt }}<|im_end|>\n{{ end }}"
           "<|im_start|>assistant\n{{ .Response }}<|im_end|>\n")
_LLAMA3 = ("{{ if .System }}<|start_header_id|>system<|end_header_id|>\n\n"
           "{{ .System }}<|eot_id|>{{ end }}{{ if .Prompt }}<|start_header_id|>user"
           "<|end_header_id|>\n\n{{ .Prompt }}<|eot_id|>{{ end }}<|start_header_id|>"
           "assistant<|end_header_id|>\n\n{{ .Response }}<|eot_id|>")
_OLLAMA_CHAT = {
    "<|im_start|>": (_CHATML, ["<|im_start|>", "<|im_end|>"]),
    "<|start_header_id|>": (_LLAMA3, ["<|start_header_id|>", "<|end_header_id|>",
                                      "<|eot_id|>"]),
}


@dataclass(frozen=True)
class GgufLoraExport:
    """What the export wrote and what its README needs to say."""

    base: Path  # the checked base GGUF
    architecture: str
    alpha: float
    rank: int
    tensors: int


def write_gguf_lora(run: RunFolder, folder: Path, base_override: str | None = None
                    ) -> GgufLoraExport:
    """Write ADAPTER_FILE and MODELFILE into `folder` (an empty staging folder)."""
    import gguf

    from tscu_tui.engine.models.gguf import read_header

    base = base_gguf(run, base_override)
    header = read_header(base)
    arch = supported_architecture(header.architecture, str(base))
    meta = header.metadata
    heads = int(meta[f"{arch}.attention.head_count"])
    permuted = permuted_heads(arch, heads, int(meta.get(f"{arch}.attention.head_count_kv",
                                                        heads)))
    pairs, rank, scale = lora_pairs(run)
    alpha = scale * rank
    writer = gguf.GGUFWriter(str(folder / ADAPTER_FILE), arch)
    writer.add_type(gguf.GGUFType.ADAPTER)
    writer.add_string(gguf.Keys.Adapter.TYPE, "lora")
    writer.add_float32(gguf.Keys.Adapter.LORA_ALPHA, alpha)
    writer.add_name(f"tscu LoRA for {base.name}")
    for pair in pairs:
        name = pair.gguf_weight
        if name not in header.tensor_types:
            raise _mismatch(base, name)
        writer.add_tensor(f"{name}.lora_a", pair.a)
        writer.add_tensor(f"{name}.lora_b", to_gguf_order(name, pair.b, permuted).copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    (folder / MODELFILE).write_text(modelfile(str(base.resolve()), meta, ADAPTER_FILE))
    return GgufLoraExport(base=base, architecture=arch, alpha=alpha, rank=rank,
                          tensors=2 * len(pairs))


def _mismatch(base: Path, name: str) -> Exception:
    from tscu_tui.engine.hub import ExportError

    return ExportError(f"{base}: has no tensor {name} for the adapter to apply to")


def modelfile(base: str, metadata: dict, adapter: str | None) -> str:
    """An Ollama Modelfile: FROM the base, ADAPTER (relative to the Modelfile), and the
    chat template and stop strings where the GGUF's Jinja template is one we know."""
    lines = ["# Ollama: ollama create NAME -f Modelfile   (written by tscu export)",
             f"FROM {base}"]
    if adapter:
        lines.append(f"ADAPTER ./{adapter}")
    jinja = str(metadata.get("tokenizer.chat_template") or "")
    for marker, (template, stops) in _OLLAMA_CHAT.items():
        if marker in jinja:
            lines.append(f'TEMPLATE """{template}"""')
            lines += [f'PARAMETER stop "{stop}"' for stop in stops]
            break
    else:
        lines.append("# no TEMPLATE: Ollama takes the chat template from the GGUF, if any")
    return "\n".join(lines) + "\n"


def usage(base: str, adapter: str | None, model: str | None = None) -> str:
    """The card's usage section: llama.cpp and Ollama commands for this export."""
    weights = f"-m {model or base}" + (f" --lora {adapter}" if adapter else "")
    prompt = '"The future of AI is"'
    python = (f'llm = Llama(model_path="{model or base}"'
              + (f', lora_path="{adapter}"' if adapter else "") + ")")
    return (
        "## Usage\n\n"
        "With llama.cpp (run from this folder"
        + ("; the base GGUF is the file the run trained on, checked by SHA-256" if adapter
           else "") + "):\n\n```bash\n"
        f"llama-cli {weights}\n"
        f"llama-completion {weights} -no-cnv -p {prompt} -n 64\n"
        f"llama-server {weights}\n```\n\n"
        "With Ollama (the `Modelfile` here names the files):\n\n```bash\n"
        "ollama create my-tscu-model -f Modelfile\n"
        "ollama run my-tscu-model\n```\n\n"
        "With llama-cpp-python:\n\n```python\nfrom llama_cpp import Llama\n\n"
        f"{python}\nprint(llm({prompt}, max_tokens=64)[\"choices\"][0][\"text\"])\n```\n")
