"""The `tscu` command line: fast help, one-line errors, exit codes, the app shell."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tscu_tui import __version__
from tscu_tui.cli import main

ROOT = Path(__file__).resolve().parent.parent


def tscu(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tscu_tui", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=300)


def test_version_and_help():
    assert tscu("--version").stdout.strip() == f"tscu {__version__}"
    result = tscu("--help")
    assert result.returncode == 0
    for command in ("prepare", "check-config", "train", "demo"):
        assert command in result.stdout


def test_check_config_prints_the_resolved_config(capsys):
    assert main(["check-config", str(ROOT / "tscu.toml"), "--set", "lora.r=8"]) == 0
    out = capsys.readouterr().out
    assert "valid" in out and "\nr = 8\n" in out and 'name = "Qwen/Qwen3-4B-MLX-4bit"' in out


def test_check_config_on_a_broken_file_gives_one_line_per_problem(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nbatch_size = 0\nmax_step = 5\n[scu]\nmode = 'pid'\n")
    result = tscu("check-config", str(bad))
    assert result.returncode == 1 and result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines == [
        f"tscu: error: {bad}:2: train.batch_size = 0: must be an integer >= 1",
        f"tscu: error: {bad}:3: unknown key 'train.max_step' (did you mean train.max_steps?)",
        f"tscu: error: {bad}:5: scu.mode = \"pid\": must be one of 'pi', 'fixed', 'off', 'auto'",
    ]
    assert "Traceback" not in result.stderr


def test_check_config_on_bad_toml_syntax_names_the_line(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nname = 'x'\n[train\n")
    result = tscu("check-config", str(bad))
    assert result.returncode == 1
    assert result.stderr.startswith(f"tscu: error: {bad}:3:")
    assert len(result.stderr.splitlines()) == 1


def test_train_without_a_prepared_dataset_is_one_line(tmp_path):
    result = tscu("train", "--config", str(ROOT / "tscu_tui/assets/presets/demo.toml"),
                  "--dataset-path", str(tmp_path / "nowhere"),
                  "--output-dir", str(tmp_path / "run"))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"tscu: error: prepared dataset not found: {tmp_path / 'nowhere'} "
        "(create it with tscu prepare)"]
    assert not (tmp_path / "run").exists()  # no output that looks like a run


def test_missing_config_file_is_one_line(tmp_path):
    result = tscu("train", "--config", str(tmp_path / "nope.toml"))
    assert result.returncode == 1
    assert result.stderr == f"tscu: error: {tmp_path / 'nope.toml'}: no such config file\n"


@pytest.mark.asyncio
async def test_app_shell_opens_shows_the_config_and_quits_by_key():
    from tscu_tui.app import TscuApp
    from tscu_tui.engine.config import load_config

    app = TscuApp(config=load_config(ROOT / "tscu.toml"), config_path=ROOT / "tscu.toml")
    async with app.run_test(size=(80, 24)) as pilot:
        assert app.current_mode == "train"
        assert "Qwen/Qwen3-4B-MLX-4bit" in "\n".join(app.screen.query_one("#log").lines)
        assert app.theme == "tscu-dark"
        await pilot.press("ctrl+t")
        assert app.theme == "tscu-light"
        await pilot.press("q")
    assert app.return_code == 0


def test_demo_presets_name_their_model_data_and_folders(tmp_path):
    from tscu_tui.commands.demo import demo_config
    from tscu_tui.engine.config.assets import DEMO_CORPUS

    demo = demo_config(None, [])
    assert demo.model.name == "tscu-tiny-qwen3" and demo.data.dataset == str(DEMO_CORPUS)
    assert (demo.data.path, demo.output.dir) == ("demo_output/data", "demo_output/run")
    real = demo_config(str(tmp_path / "r"), ["train.max_steps=7"], "real")
    assert (real.model.name, real.data.dataset) == ("smollm2-135m", "pydoc")
    assert real.output.dir == str(tmp_path / "r" / "run") and real.train.max_steps == 7


def test_one_spelling_of_every_flag_old_ones_still_accepted(capsys):
    from tscu_tui.cli import build_parser

    parser = build_parser()
    old = parser.parse_args(["export", "run", "--output", "x"])
    assert old.output == parser.parse_args(["export", "run", "--output-dir", "x"]).output
    assert parser.parse_args(["push", "run", "--repo-id", "me/x"]).repo_id == "me/x"
    assert parser.parse_args(["push", "run", "--hub-model-id", "me/x"]).repo_id == "me/x"
    for command in ("prepare", "train", "demo", "import", "export"):
        with pytest.raises(SystemExit):
            parser.parse_args([command, "--help"])
        assert "--output-dir" in capsys.readouterr().out, command
    from tscu_tui.commands.train import resolve_config

    args = parser.parse_args(["train", "--push-to-hub", "--hub-model-id", "me/model"])
    hub = resolve_config(args).hub
    assert hub.push_to_hub and hub.hub_model_id == "me/model"


def test_demo_whose_output_is_not_a_terminal_prints_instead_of_opening_the_app(tmp_path):
    result = tscu("demo", "--output-dir", str(tmp_path / "demo"), "--set", "train.max_steps=2",
                  "--set", "train.eval_steps=2", "--set", "train.eval_batches=1")
    assert result.returncode == 0, result.stderr
    assert "held-out bits per token:" in result.stdout and "after 2 steps" in result.stdout
    assert "\x1b[?1049h" not in result.stdout  # no alternate screen: the app never opened
    assert (tmp_path / "demo" / "run" / "training_curves.png").is_file()


def test_telemetry_names_the_blas_and_kernels_a_cpu_step_uses(tmp_path):
    result = tscu("telemetry", "--count", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("CPU step: ")]
    assert len(lines) == 1 and "OpenBLAS loaded from" in lines[0]
    assert lines[0].endswith(")") and "native CPU kernels (" in lines[0]  # make setup built them
    off = subprocess.run([sys.executable, "-m", "tscu_tui", "telemetry", "--count", "0"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=300,
                         env={**os.environ, "TSCU_NATIVE": "0"})
    assert "MLX-op CPU kernels (native: TSCU_NATIVE=0)" in off.stdout
