"""Samples while training: the model answers held-out prompts at each evaluation, through
the chat template the data was prepared with (its variables included); events, the
analysis and the model card keep them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from runs import tiny_config, train

from tscu_tui.engine.data import PrepareOptions, prepare_dataset
from tscu_tui.engine.events import SampleEvent
from tscu_tui.engine.models import native
from tscu_tui.engine.models.load import EMBEDDED_MODEL
from tscu_tui.engine.runs.sample import generate_samples

TEMPLATE = ("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n"
            "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n"
            "{% if terse %}(terse) {% endif %}{% endif %}")


def test_samples_at_each_evaluation_use_the_template_and_are_kept(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = [{"messages": [{"role": "user", "content": f"Spell {w}."},
                             {"role": "assistant", "content": " ".join(w)}]}
               for w in ["cat", "dog", "bird", "fish", "horse", "mouse"] * 20]
    (tmp_path / "chat.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (tmp_path / "chat.jinja").write_text(TEMPLATE)
    prepare_dataset(PrepareOptions(dataset=str(tmp_path / "chat.jsonl"), model=EMBEDDED_MODEL,
                                   output_dir=tmp_path / "data", block_size=64,
                                   validation_fraction=0.1,
                                   chat_template=str(tmp_path / "chat.jinja"),
                                   chat_template_kwargs={"terse": True}))
    out = tmp_path / "run"
    config = tiny_config(tmp_path / "data", out, "train.max_steps=4", "train.eval_steps=2",
                         "data.sample_max_tokens=6", 'data.sample_prompts=["Spell owl."]',
                         'scu.mode="off"')
    events, _ = train(config)
    assert type(events[-1]).__name__ == "RunFinished", events[-1]
    samples = [e for e in events if isinstance(e, SampleEvent)]
    assert [s.step for s in samples] == [0, 2, 4]  # one round per evaluation
    # The user's prompt as a user turn, through the dataset's template and its variables.
    assert samples[0].prompts == ["<|im_start|>user\nSpell owl.<|im_end|>\n"
                                  "<|im_start|>assistant\n(terse) "]
    assert all(len(s.answers) == 1 and "<|im_end|>" not in s.answers[0] for s in samples)
    recorded = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [r["step"] for r in recorded if r["event"] == "SampleEvent"] == [0, 2, 4]
    analysis = json.loads((out / "mlx_tscu_analysis.json").read_text())
    assert [r["answers"] for r in analysis["samples"]] == [s.answers for s in samples]
    card = (out / "README.md").read_text()
    assert "## Samples" in card and "Greedy answers at step 4" in card
    assert "(terse)" in card
    assert "chat template: " in card and "terse=True" in card
    summary = json.loads((out / "mlx_training_summary.json").read_text())
    assert summary["data"]["chat_template"]["kwargs"] == {"terse": True}
    assert 0 < summary["data"]["loss_token_share"] < 1
    # The results screen's sampler asks through the same template and variables, and
    # decodes on the training's CPU path (the packed weights, a token at a time).
    rows: list[int] = []
    kernels = native.status().module
    real = kernels.quantized_matmul
    monkeypatch.setattr(kernels, "quantized_matmul",
                        lambda x, *rest: rows.append(x.shape[0]) or real(x, *rest))
    pair = generate_samples(EMBEDDED_MODEL, out, "Spell owl.", max_tokens=4)
    assert pair.prompt == samples[0].prompts[0]
    assert pair.adapted == samples[-1].answers[0][:len(pair.adapted)]
    assert rows and set(rows) == {1}


def test_without_sample_prompts_the_held_out_records_are_asked(demo_data: Path,
                                                               tmp_path: Path) -> None:
    events, _ = train(tiny_config(demo_data, tmp_path / "run", "train.max_steps=2",
                                  "train.eval_steps=2", "data.sample_max_tokens=4"))
    samples = [e for e in events if isinstance(e, SampleEvent)]
    assert samples and len(samples[-1].prompts) == 3  # three held-out documents' openings
    assert all(r for r in samples[-1].references or [])
    assert all(p.startswith("Unicode characters U+") for p in samples[-1].prompts)
