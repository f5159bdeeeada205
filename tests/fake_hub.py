"""A fake Hugging Face Hub on loopback: the network boundary of `tscu push` tests.

A `http.server` in a thread that answers the few endpoints huggingface_hub calls
to create a repo, a branch and a commit of regular (non-LFS) files. It records
what it received; with `status` set it refuses every request with that code.
Never the real Hub, never the internet.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class FakeHub:
    status: int = 200  # anything but 200: answer every request with it
    stall_s: float = 0.0  # > 0: a dropped network, every request waits this long unanswered
    requests: list[tuple[str, str]] = field(default_factory=list)
    authorizations: set[str] = field(default_factory=set)
    repos: dict[str, dict[str, Any]] = field(default_factory=dict)
    files: dict[str, bytes] = field(default_factory=dict)  # "repo@revision:path" -> bytes
    validated: list[str] = field(default_factory=list)  # README.md texts sent for checking
    endpoint: str = ""

    def __enter__(self) -> FakeHub:
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                return None

            def do_GET(self) -> None:  # noqa: N802
                hub._handle(self)

            def do_POST(self) -> None:  # noqa: N802
                hub._handle(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self._server.server_address[1]}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # ------------------------------------------------------------------ routes
    def _handle(self, req: BaseHTTPRequestHandler) -> None:
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        self.requests.append((req.command, req.path))
        self.authorizations.add(req.headers.get("Authorization", ""))
        if self.stall_s:
            time.sleep(self.stall_s)
            return None
        if self.status != 200:
            return _reply(req, self.status, {"error": "Invalid credentials in Authorization "
                                             "header" if self.status == 401 else "refused"})
        path = req.path.split("?")[0]
        if path == "/api/repos/create":
            data = json.loads(body)
            repo = f"{data.get('organization')}/{data['name']}"
            self.repos[repo] = data
            return _reply(req, 200, {"url": f"{self.endpoint}/{repo}", "name": repo})
        if path == "/api/validate-yaml":
            self.validated.append(json.loads(body)["content"])
            return _reply(req, 200, {"errors": [], "warnings": []})
        if re.fullmatch(r"/api/models/([^/]+/[^/]+)/branch/(.+)", path):
            return _reply(req, 200, {})
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/preupload/(.+)", path):
            files = json.loads(body)["files"]
            return _reply(req, 200, {"files": [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False, "oid": None}
                for f in files]})
        if m := re.fullmatch(r"/api/models/([^/]+/[^/]+)/commit/(.+)", path):
            for line in body.decode().splitlines():
                item = json.loads(line)
                if item["key"] == "file":
                    value = item["value"]
                    self.files[f"{m[1]}@{m[2]}:{value['path']}"] = \
                        base64.b64decode(value["content"])
            return _reply(req, 200, {"commitUrl": f"{self.endpoint}/{m[1]}/commit/0",
                                     "commitOid": "0" * 40, "pullRequestUrl": None})
        return _reply(req, 404, {"error": f"fake Hub has no route {req.command} {path}"})


def _reply(req: BaseHTTPRequestHandler, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload).encode()
    req.send_response(status)
    req.send_header("Content-Type", "application/json")
    req.send_header("Content-Length", str(len(data)))
    req.end_headers()
    req.wfile.write(data)
