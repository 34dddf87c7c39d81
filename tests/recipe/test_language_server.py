"""What an editor shows for a recipe, checked in a real YAML language server.

`kcli schema` is meant for editors using Red Hat's yaml-language-server (VS Code's YAML
extension, and other editors' LSP clients). This module starts that server over stdio, gives it
the schema `kcli schema` prints, opens recipes and reads the diagnostics it publishes. It proves:

- a misspelt layer type (`type: Dense2`, `type: dens`) gets one diagnostic, at the misspelt
  name, that lists every layer type (the schema's `errorMessage`), not a merge of the few types
  that take the keys written (`Value must be "Dense" | "LSTM"`);
- a misspelt top-level key is reported at that key;
- a value of the wrong type (`units: abc`) is reported at that value;
- a valid recipe (recipes/quickstart.yaml) gets no diagnostic.

It is skipped unless the server is there. Run it with either

    npm install -g yaml-language-server
    pytest tests/recipe/test_language_server.py

or, with the server installed elsewhere (`cd /tmp/yls && npm install yaml-language-server`),

    KCLI_YAML_LANGUAGE_SERVER=/tmp/yls/node_modules/.bin/yaml-language-server \\
        pytest tests/recipe/test_language_server.py

(the variable holds a path or a command line; `--stdio` is added). Everything has a deadline
and the server is killed at the end, so the module cannot hang.
"""

from __future__ import annotations

import json
import os
import queue
import shlex
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from kcli.cli import app

QUICKSTART = Path(__file__).resolve().parents[2] / "recipes" / "quickstart.yaml"
DEADLINE_S = 25.0  # for the whole conversation with the server

# name -> (what to replace in recipes/quickstart.yaml, by what)
BROKEN = {
    "type Dense2": ("- {type: Dense, units: 128", "- {type: Dense2, units: 128"),
    "type dens": ("- {type: Dense, units: 10,", "- {type: dens, units: 10,"),
    "key sed": ("\nseed: 42\n", "\nsed: 42\n"),
    "units abc": ("{type: Dense, units: 128,", "{type: Dense, units: abc,"),
}


def server_command() -> list[str] | None:
    configured = os.environ.get("KCLI_YAML_LANGUAGE_SERVER")
    if configured:
        return [*shlex.split(configured), "--stdio"]
    found = shutil.which("yaml-language-server")
    return [found, "--stdio"] if found else None


class LanguageServer:
    """A yaml-language-server process, spoken to in LSP's JSON-RPC over its stdin/stdout."""

    def __init__(self, command: list[str], log: Path, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.log = log
        self.deadline = time.monotonic() + DEADLINE_S
        self.messages: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.diagnostics: dict[str, list[dict[str, Any]]] = {}
        self.next_id = 0
        with log.open("wb") as stderr:
            self.process = subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr
            )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self.messages.put(None)
                    return
                if line in (b"\r\n", b"\n"):
                    break
                name, _, value = line.decode("ascii").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            if length is not None:
                self.messages.put(json.loads(stream.read(length)))

    def send(self, message: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **message}).encode()
        assert self.process.stdin is not None
        self.process.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.process.stdin.flush()

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        self.send({"id": self.next_id, "method": method, "params": params})
        reply = self.wait_for(lambda m: m.get("id") == self.next_id and "method" not in m)
        assert "error" not in reply, reply
        return reply.get("result")

    def wait_for(self, done: Any) -> dict[str, Any]:
        """Handle the server's messages until one satisfies `done`; fail at the deadline."""
        while True:
            left = self.deadline - time.monotonic()
            try:
                message = self.messages.get(timeout=max(left, 0.01)) if left > 0 else None
            except queue.Empty:
                message = None
            if message is None:
                log = self.log.read_text(errors="replace")[-2000:]
                pytest.fail(f"yaml-language-server: no answer in {DEADLINE_S} s; stderr:\n{log}")
            method = message.get("method")
            if method == "textDocument/publishDiagnostics":
                params = message["params"]
                self.diagnostics[params["uri"]] = params["diagnostics"]
            elif method is not None and "id" in message:  # a request from the server
                items = message.get("params", {}).get("items", [])
                result = None  # registerCapability, workDoneProgress/create, ...
                if method == "workspace/configuration":
                    result = [self.settings.get(item.get("section")) for item in items]
                self.send({"id": message["id"], "result": result})
            if done(message):
                return message

    def open(self, path: Path, broken: bool) -> list[dict[str, Any]]:
        """Open `path` and return the diagnostics the server publishes for it: for a `broken`
        recipe, the first non-empty ones (an empty list may come before the schema is read)."""
        uri = path.as_uri()
        document = {"uri": uri, "languageId": "yaml", "version": 1, "text": path.read_text()}
        self.notify("textDocument/didOpen", {"textDocument": document})
        self.wait_for(
            lambda m: (
                m.get("method") == "textDocument/publishDiagnostics"
                and m["params"]["uri"] == uri
                and (bool(m["params"]["diagnostics"]) or not broken)
            )
        )
        return self.diagnostics[uri]

    def close(self) -> None:
        self.process.kill()
        self.process.wait(timeout=10)


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Each recipe case -> (its text, the diagnostics the server published for it)."""
    command = server_command()
    if command is None:
        pytest.skip(
            "no yaml-language-server: `npm install -g yaml-language-server`, or set "
            "KCLI_YAML_LANGUAGE_SERVER to its path"
        )
    folder = tmp_path_factory.mktemp("language_server")
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = folder / "schema.json"
    schema.write_text(result.stdout)
    valid = QUICKSTART.read_text()
    texts = {}
    for case, (old, new) in BROKEN.items():
        assert valid.count(old) == 1, (case, old)
        texts[case] = valid.replace(old, new)
    texts["valid"] = valid  # last: the broken ones show that the schema is read by then

    settings = {"yaml": {"validate": True, "schemas": {schema.as_uri(): ["*.yaml"]}}}
    server = LanguageServer(command, folder / "server.log", settings)
    try:
        reply = server.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": folder.as_uri(),
                "capabilities": {
                    "textDocument": {"publishDiagnostics": {}},
                    "workspace": {"configuration": True},
                },
            },
        )
        server.notify("initialized", {})
        server.notify("workspace/didChangeConfiguration", {"settings": settings})
        found: dict[str, Any] = {"server": reply.get("serverInfo", {})}
        for number, (case, text) in enumerate(texts.items()):
            path = folder / f"recipe_{number}.yaml"
            path.write_text(text)
            found[case] = (text, server.open(path, broken=case != "valid"))
        return found
    finally:
        server.close()


def line_of(text: str, needle: str) -> tuple[int, int]:
    """The 0-based line and column of `needle`'s only occurrence in `text`."""
    (line,) = [n for n, row in enumerate(text.splitlines()) if needle in row]
    return line, text.splitlines()[line].index(needle)


@pytest.mark.parametrize("case, name", [("type Dense2", "Dense2"), ("type dens", "dens")])
def test_a_misspelt_layer_type_gets_one_message_listing_the_types(published, case, name):
    from kcli.model.layers import layer_registry

    text, diagnostics = published[case]
    line, column = line_of(text, f"type: {name},")
    assert len(diagnostics) == 1, diagnostics
    (diagnostic,) = diagnostics
    assert diagnostic["range"]["start"] == {"line": line, "character": column + len("type: ")}
    names = ", ".join(layer_registry.names())
    assert diagnostic["message"] == f"unknown layer type; one of: {names}"


def test_a_misspelt_top_level_key_is_reported_at_the_key(published):
    text, diagnostics = published["key sed"]
    line, column = line_of(text, "sed: 42")
    assert [(d["range"]["start"], d["message"]) for d in diagnostics] == [
        ({"line": line, "character": column}, "Property sed is not allowed.")
    ]


def test_a_value_of_the_wrong_type_is_reported_at_the_value(published):
    text, diagnostics = published["units abc"]
    line, column = line_of(text, "units: abc")
    assert len(diagnostics) == 1, diagnostics
    (diagnostic,) = diagnostics
    assert diagnostic["range"]["start"] == {"line": line, "character": column + len("units: ")}
    assert "integer" in diagnostic["message"]


def test_a_valid_recipe_gets_no_diagnostic(published):
    _, diagnostics = published["valid"]
    assert diagnostics == []
    assert published["server"].get("name") == "yaml-language-server"
