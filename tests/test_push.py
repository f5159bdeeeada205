"""`tscu push`: one-line failures within seconds, uploads to a loopback fake Hub only,
and a planted token that must never reach a file.

Network tests name their boundary: `loopback` tests talk to 127.0.0.1 (a closed port
or tests/fake_hub.py), never to the internet or the real Hub.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from fake_hub import FakeHub
from runs import tiny_config, train

from tscu_tui.engine.hub import HubError
from tscu_tui.engine.hub.export import export_run
from tscu_tui.engine.hub.push import NO_TOKEN, upload_plan, validate_repo_id

FAST_S = 10.0


@pytest.fixture
def run_dir(tiny_run: Path) -> Path:
    return tiny_run


def tscu_push(run_dir: Path, *args: str, home: Path, token: str | None = None,
              endpoint: str | None = None) -> tuple[subprocess.CompletedProcess[str], float]:
    """Run the real CLI with a clean Hugging Face environment; return result and seconds."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env["HF_HOME"] = str(home)  # an empty login cache
    env["HF_HUB_DISABLE_TELEMETRY"] = "1"
    if token is not None:
        env["HF_TOKEN"] = token
    if endpoint is not None:
        env["HF_ENDPOINT"] = endpoint
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "tscu_tui.cli", "push", str(run_dir), *args],
                            capture_output=True, text=True, env=env, timeout=60)
    return result, time.perf_counter() - started


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def assert_one_line_error(result: subprocess.CompletedProcess[str], seconds: float,
                          text: str) -> None:
    assert result.returncode == 1, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("tscu: error: "), result.stderr
    assert text in lines[0]
    assert "Traceback" not in result.stderr + result.stdout
    assert seconds < FAST_S


def test_push_without_a_token_is_one_line_fast(run_dir, tmp_path):
    result, seconds = tscu_push(run_dir, "--repo-id", "someone/model", home=tmp_path)
    assert_one_line_error(result, seconds, NO_TOKEN)
    print(f"no token: exit 1 in {seconds:.2f} s")


def test_push_loopback_closed_port_with_bogus_token_is_one_line_fast(run_dir, tmp_path):
    endpoint = f"http://127.0.0.1:{closed_port()}"
    result, seconds = tscu_push(run_dir, "--repo-id", "someone/model", home=tmp_path,
                                token="hf_bogus", endpoint=endpoint)
    assert_one_line_error(result, seconds, f"cannot reach the Hub at {endpoint}")
    print(f"closed loopback port: exit 1 in {seconds:.2f} s")


@pytest.mark.parametrize("repo_id", ["no-slash", "a/b/c", "me/bad name", "me/x..y", "-me/x"])
def test_invalid_repo_ids_are_rejected_before_any_network(repo_id):
    with pytest.raises(HubError, match="invalid repo id"):
        validate_repo_id(repo_id)


def test_push_with_an_invalid_repo_id_is_one_line(run_dir, tmp_path):
    result, seconds = tscu_push(run_dir, "--repo-id", "not a repo", home=tmp_path,
                                token="hf_bogus", endpoint=f"http://127.0.0.1:{closed_port()}")
    assert_one_line_error(result, seconds, "invalid repo id 'not a repo'")


def test_push_of_a_missing_run_dir_is_one_line(tmp_path):
    result, seconds = tscu_push(tmp_path / "nope", "--repo-id", "me/x", home=tmp_path,
                                token="hf_bogus")
    assert_one_line_error(result, seconds, "does not exist")


def test_upload_plan_lists_adapters_card_and_metrics_but_no_checkpoints(run_dir):
    export_run(run_dir, "peft")
    plan = {item.path_in_repo: item for item in upload_plan(run_dir)}
    assert {"README.md", "adapter_model.safetensors", "adapter_config.json",
            "mlx/adapters.safetensors", "mlx/adapter_config.json",
            "mlx_tscu_training_metrics.json", "logs/mlx_training.log"} <= set(plan)
    assert not any("checkpoint" in name or name.startswith("export") for name in plan)
    assert plan["adapter_model.safetensors"].size_bytes > 0


def test_push_loopback_fake_hub_uploads_the_run_and_prints_the_url(run_dir, tmp_path):
    with FakeHub() as hub:
        result, seconds = tscu_push(run_dir, "--hub-model-id", "someone/tiny", "--revision",
                                    "dev", home=tmp_path, token="hf_fake",
                                    endpoint=hub.endpoint)
    assert result.returncode == 0, result.stderr
    url = f"{hub.endpoint}/someone/tiny/tree/dev"
    assert result.stdout.strip().splitlines()[-1] == url
    created = hub.repos["someone/tiny"]  # newer clients send visibility, older private
    assert created.get("visibility") == "private" or created.get("private") is True
    uploaded = {key.split(":", 1)[1] for key in hub.files}
    assert {"README.md", "adapter_model.safetensors", "mlx/adapters.safetensors"} <= uploaded
    assert all(key.startswith("someone/tiny@dev:") for key in hub.files)
    card = hub.files["someone/tiny@dev:README.md"].decode()
    assert "library_name: \"peft\"" in card and 'PeftModel.from_pretrained(base_model, ' \
        '"someone/tiny")' in card
    assert "Bearer hf_fake" in hub.authorizations
    print(f"fake Hub push: {len(hub.files)} files in {seconds:.2f} s")


@pytest.mark.parametrize(("status", "text"), [(401, "rejected the token (401"),
                                              (403, "may not write to someone/tiny (403")])
def test_push_loopback_fake_hub_refusal_is_one_line(run_dir, tmp_path, status, text):
    with FakeHub(status=status) as hub:
        result, seconds = tscu_push(run_dir, "--repo-id", "someone/tiny", home=tmp_path,
                                    token="hf_fake", endpoint=hub.endpoint)
    assert_one_line_error(result, seconds, text)


def test_push_loopback_stalled_fake_hub_times_out_in_one_line(run_dir, monkeypatch):
    """A network that drops mid-request: the read timeout ends the push, in-process as the
    TUI's worker calls it, and a retry with a working Hub then succeeds."""
    from tscu_tui.engine.hub import push

    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setattr(push, "READ_TIMEOUT_S", 1.0)
    started = time.perf_counter()
    with FakeHub(stall_s=5.0) as stalled, pytest.raises(HubError) as failure:
        push.push_run(run_dir, "someone/tiny", endpoint=stalled.endpoint)
    seconds = time.perf_counter() - started
    assert "stopped answering" in str(failure.value) and "\n" not in str(failure.value)
    assert seconds < FAST_S
    with FakeHub() as hub:
        assert push.push_run(run_dir, "someone/tiny", endpoint=hub.endpoint) \
            == f"{hub.endpoint}/someone/tiny"
    print(f"stalled Hub: one line in {seconds:.2f} s")


def test_planted_token_is_never_written(demo_data, tmp_path, monkeypatch):
    token = f"hf_planted_{secrets.token_hex(16)}"
    monkeypatch.setenv("HF_TOKEN", token)
    run = tmp_path / "run"
    train(tiny_config(demo_data, run, 'hub.hub_model_id="someone/tiny"'))
    for fmt in ("mlx", "peft"):
        export_run(run, fmt)
    outputs = []
    with FakeHub() as ok, FakeHub(status=401) as refused:
        for endpoint in (ok.endpoint, refused.endpoint, f"http://127.0.0.1:{closed_port()}"):
            result, _ = tscu_push(run, "--repo-id", "someone/tiny", home=tmp_path / "hf",
                                  token=token, endpoint=endpoint)
            outputs.append(result.stdout + result.stderr)
    assert f"Bearer {token}" in ok.authorizations  # the token was really used
    assert (run / "README.md").is_file() and (run / "mlx_config.json").is_file()
    leaks = [str(p) for p in tmp_path.rglob("*") if p.is_file() and token.encode() in
             p.read_bytes()]
    leaks += [name for name, data in ok.files.items() if token.encode() in data]
    leaks += [out for out in outputs if token in out]
    assert not leaks, f"token written to: {leaks}"


def test_push_loopback_fake_hub_without_a_known_base_uploads_the_mlx_pair_at_the_root(
        run_dir, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(run_dir, run, ignore=shutil.ignore_patterns("export", "checkpoints"))
    config = json.loads((run / "adapter_config.json").read_text())
    (run / "adapter_config.json").write_text(
        json.dumps({**config, "model": "mlx-community/Unknown-Model-4bit"}))
    with FakeHub() as hub:
        result, _ = tscu_push(run, "--repo-id", "someone/tiny", home=tmp_path / "hf",
                              token="hf_fake", endpoint=hub.endpoint)
    assert result.returncode == 0, result.stderr
    assert "no PEFT export (cannot tell the full-precision base" in result.stdout
    uploaded = {key.split(":", 1)[1] for key in hub.files}
    assert {"adapters.safetensors", "adapter_config.json", "README.md"} <= uploaded
    assert not any(name.startswith("mlx/") or name == "adapter_model.safetensors"
                   for name in uploaded)
    assert "hf download someone/tiny --local-dir adapter" in \
        hub.files["someone/tiny@main:README.md"].decode()


def test_push_loopback_fake_hub_after_training_when_config_asks(run_dir, tmp_path, monkeypatch,
                                                                capsys):
    from tscu_tui.commands.train import push_if_asked
    from tscu_tui.engine.config import load_config
    from tscu_tui.engine.errors import TscuError

    monkeypatch.setenv("HF_TOKEN", "hf_fake")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    asked = load_config(None, ["hub.push_to_hub=true", 'hub.hub_model_id="someone/after"'])
    with FakeHub() as hub:
        monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
        push_if_asked(load_config(None), str(run_dir))  # push_to_hub off: nothing sent
        assert not hub.requests
        push_if_asked(asked, str(run_dir))
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"{hub.endpoint}/someone/after"
    assert any(key.startswith("someone/after@main:") for key in hub.files)
    with pytest.raises(TscuError, match="hub.hub_model_id is empty"):
        push_if_asked(load_config(None, ["hub.push_to_hub=true"]), str(run_dir))


def test_train_push_to_hub_flags_upload_the_finished_run_loopback_fake_hub(demo_data, tmp_path):
    """The seed's `--push-to-hub --hub-model-id ID`: train, then upload, one command."""
    from tscu_tui.engine.config import save_config

    config_file = tmp_path / "tscu.toml"
    save_config(config_file, tiny_config(demo_data, tmp_path / "run", "train.max_steps=2",
                                         "train.eval_steps=2"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    with FakeHub() as hub:
        env.update(HF_HOME=str(tmp_path / "hf"), HF_TOKEN="hf_fake", HF_ENDPOINT=hub.endpoint,
                   HF_HUB_DISABLE_TELEMETRY="1")
        result = subprocess.run([sys.executable, "-m", "tscu_tui", "train", "--config",
                                 str(config_file), "--push-to-hub", "--hub-model-id",
                                 "someone/trained"], capture_output=True, text=True, env=env,
                                timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == f"{hub.endpoint}/someone/trained"
    assert "someone/trained" in hub.repos
    assert "someone/trained@main:adapter_model.safetensors" in hub.files
    saved = (tmp_path / "run" / "mlx_config.json").read_text()
    assert '"hub_model_id": "someone/trained"' in saved and "hf_fake" not in saved
