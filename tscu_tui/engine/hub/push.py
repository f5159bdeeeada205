"""Upload a run to the Hugging Face Hub, with one-line errors and short timeouts.

The TUI calls `push_run` from a worker thread; the CLI calls it directly. The
token comes from `huggingface_hub.get_token()` (HF_TOKEN, then the login cache)
and goes only into the HfApi client: never into a file, the config, the log or
an error message.

Repo layout: the PEFT adapter at the root (so `PeftModel.from_pretrained(base,
"USER/NAME")` works), mlx-lm's pair under `mlx/`, the model card, the run's
JSON files and logs. Checkpoints, other exports and temp files stay local.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tscu_tui.engine.hub import ExportError, HubError
from tscu_tui.engine.hub.export import default_export_dir
from tscu_tui.engine.hub.model_card import CARD_FILE, HUB_MLX_FOLDER
from tscu_tui.engine.hub.peft_export import PEFT_CONFIG, PEFT_WEIGHTS
from tscu_tui.engine.runs.files import (
    ADAPTER_CONFIG,
    ADAPTER_WEIGHTS,
    ANALYSIS_FILE,
    ARGS_FILE,
    CONFIG_FILE,
    CURVES_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
)

Progress = Callable[[str], None]

#: seconds to open a connection / to wait for the next bytes on one: a closed port
#: fails at once, a dropped network after READ_TIMEOUT_S
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0

_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]{0,95}/[A-Za-z0-9][\w.-]{0,95}$")
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


@dataclass(frozen=True)
class UploadItem:
    """One file of the upload: where it goes in the repo and where it is here."""

    path_in_repo: str
    local: Path | None  # None: generated at upload time (the Hub model card)
    size_bytes: int


def validate_repo_id(repo_id: str) -> None:
    """USER/NAME with the Hub's characters; raise HubError (one line) otherwise."""
    problem = None
    if not repo_id or "/" not in repo_id:
        problem = "it must be USER/NAME"
    elif not _REPO_ID.match(repo_id):
        problem = ("use letters, digits, '-', '_' and '.', one '/', at most 96 characters "
                   "per part")
    elif ".." in repo_id or "--" in repo_id or repo_id.endswith((".git", ".")):
        problem = "'..', '--' and a trailing '.git' or '.' are not allowed"
    if problem:
        raise HubError(f"invalid repo id '{repo_id}': {problem}")


def read_token() -> str:
    """The user's Hub token from HF_TOKEN or the login cache; HubError when absent."""
    from huggingface_hub import get_token

    try:
        token = get_token()
    except Exception as exc:  # e.g. a failing OIDC exchange
        raise HubError(f"cannot read the Hugging Face token ({type(exc).__name__})") from None
    if not token:
        raise HubError(NO_TOKEN)
    return token


def has_peft_export(run_dir: Path) -> bool:
    peft = default_export_dir(run_dir, "peft")
    return (peft / PEFT_WEIGHTS).is_file() and (peft / PEFT_CONFIG).is_file()


def upload_plan(run_dir: str | Path) -> list[UploadItem]:
    """The files `push_run` would upload from `run_dir` as it is now (no network)."""
    run = Path(run_dir)
    peft = default_export_dir(run, "peft")
    # Both layouts name their config adapter_config.json: PEFT's takes the root when
    # there is a PEFT export, mlx-lm's pair then moves to mlx/.
    mlx = f"{HUB_MLX_FOLDER}/" if has_peft_export(run) else ""
    pairs: list[tuple[str, Path]] = [
        (PEFT_WEIGHTS, peft / PEFT_WEIGHTS), (PEFT_CONFIG, peft / PEFT_CONFIG),
        (f"{mlx}{ADAPTER_WEIGHTS}", run / ADAPTER_WEIGHTS),
        (f"{mlx}{ADAPTER_CONFIG}", run / ADAPTER_CONFIG),
        *[(name, run / name) for name in (SUMMARY_FILE, ANALYSIS_FILE, METRICS_FILE,
                                          CONFIG_FILE, ARGS_FILE, "events.jsonl",
                                          CURVES_FILE)],
        *[(f"logs/{log.name}", log) for log in sorted((run / "logs").glob("*.log"))],
    ]
    items = [UploadItem(CARD_FILE, None, 0)]
    items += [UploadItem(dest, src, src.stat().st_size) for dest, src in pairs if src.is_file()]
    return items


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = True, revision: str = "",
             base_model: str | None = None, progress: Progress | None = None,
             endpoint: str | None = None) -> str:
    """Upload `run_dir` to `repo_id` (created if needed); return the repo's URL.

    Checks the repo id, the run and the token before any network; writes the PEFT
    export and the run's README.md if missing. `endpoint` defaults to HF_ENDPOINT or
    the Hub. Raises HubError/ExportError (one line); safe to call again after a failure.
    """
    from huggingface_hub import constants

    from tscu_tui.engine.hub.run import open_run

    say = progress or (lambda message: None)
    validate_repo_id(repo_id)
    if revision and not re.fullmatch(r"[\w./-]+", revision):
        raise HubError(f"invalid revision '{revision}': use a branch name")
    run = open_run(run_dir)
    token = read_token()
    card = _prepare(run.path, repo_id, base_model, say)
    items = upload_plan(run.path)
    endpoint = (endpoint or os.environ.get("HF_ENDPOINT") or constants.ENDPOINT).rstrip("/")
    try:
        with _timeouts():
            return _upload(run.path, repo_id, token, endpoint, items, card, private,
                           revision, say)
    except HubError:
        raise
    except Exception as exc:
        raise HubError(_one_line(exc, repo_id, endpoint).replace(token, "***")) from None


def _prepare(run_dir: Path, repo_id: str, base_model: str | None, say: Progress) -> bytes:
    """Refresh the PEFT export and the run's card from the run as it is now (a resumed
    run has newer adapters than an old export); return the Hub card."""
    from tscu_tui.engine.hub.export import export_run
    from tscu_tui.engine.hub.model_card import render_card, write_run_card
    from tscu_tui.engine.hub.run import open_run

    if not base_model and has_peft_export(run_dir):  # keep an earlier --base-model
        config = json.loads((default_export_dir(run_dir, "peft") / PEFT_CONFIG).read_text())
        base_model = config.get("base_model_name_or_path") or None
    try:
        export_run(run_dir, "peft", base_model=base_model, progress=say)
    except ExportError as exc:
        say(f"no PEFT export ({exc}); uploading the mlx-lm adapter only")
    write_run_card(run_dir)
    target = "hub" if has_peft_export(run_dir) else "run"
    text = render_card(open_run(run_dir), target=target, base_model=base_model,
                       repo_id=repo_id)
    return text.encode("utf-8")


def _upload(run_dir: Path, repo_id: str, token: str, endpoint: str, items: list[UploadItem],
            card: bytes, private: bool, revision: str, say: Progress) -> str:
    from huggingface_hub import CommitOperationAdd, HfApi

    api = HfApi(endpoint=endpoint, token=token)
    say(f"creating {repo_id} on {api.endpoint} (if needed)")
    url = api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    if revision:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    operations = [CommitOperationAdd(item.path_in_repo,
                                     card if item.local is None else str(item.local))
                  for item in items]
    total = sum(item.size_bytes for item in items) + len(card)
    say(f"uploading {len(operations)} files ({total / 1e6:.2f} MB) to {repo_id}"
        + (f" @ {revision}" if revision else ""))
    api.create_commit(repo_id, operations, commit_message=f"tscu: upload run {run_dir.name}",
                      revision=revision or None, repo_type="model")
    link = str(url).rstrip("/") + (f"/tree/{revision}" if revision else "")
    say(f"uploaded: {link}")
    return link


@contextmanager
def _timeouts() -> Iterator[None]:
    """huggingface_hub's shared client waits forever by default; a push must not.
    The client's own setting comes back afterwards (model downloads share it)."""
    from huggingface_hub import get_session

    try:
        import httpx2 as httpx
    except ImportError:  # huggingface_hub releases before 2.x use httpx
        import httpx  # type: ignore[no-redef]
    session = get_session()
    if not hasattr(session, "timeout"):
        yield
        return
    previous = session.timeout
    session.timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    try:
        yield
    finally:
        session.timeout = previous


def _one_line(exc: Exception, repo_id: str, endpoint: str) -> str:
    """The failure as one line a person can act on."""
    from huggingface_hub.errors import HfHubHTTPError, OfflineModeIsEnabled

    if isinstance(exc, OfflineModeIsEnabled):
        return "cannot upload: offline mode is on (unset HF_HUB_OFFLINE) and retry"
    if isinstance(exc, HfHubHTTPError) and exc.response is not None:
        status = exc.response.status_code
        if status == 401:
            return ("the Hub rejected the token (401 Unauthorized): set a valid HF_TOKEN "
                    "or run `hf auth login`, then retry")
        if status == 403:
            return (f"the token may not write to {repo_id} (403 Forbidden): use a token with "
                    "write access to that namespace")
        server = (exc.server_message or str(exc)).strip().splitlines()
        return f"the Hub answered {status} for {repo_id}: {server[0] if server else ''}"
    name = type(exc).__name__
    if "Timeout" in name and "Connect" not in name:
        return (f"the Hub at {endpoint} stopped answering ({name} after {READ_TIMEOUT_S:g} s); "
                "check the network and retry")
    if "Timeout" in name or "Connect" in name or "Network" in name or "Protocol" in name \
            or isinstance(exc, OSError):
        return f"cannot reach the Hub at {endpoint} ({name}); check the network and retry"
    text = "; ".join(line.strip(" -") for line in str(exc).strip().splitlines() if line.strip())
    return f"upload to {repo_id} failed: {name}: {text}"
