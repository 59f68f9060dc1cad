"""The operator process never imports MLflow (about 100 MB of memory).

Its registry client is ``rest_client.RestRegistry`` (MLflow's REST API over ``requests``);
only the CLI's publish/fetch/subscribe commands load the MLflow client. These probes run
in a fresh interpreter that refuses ``mlflow`` and ``mlflow_client`` and records any
attempt, even a guarded one: every operator module imports, and the operator's own
registry path (startup's client factory, the alias cache, ``read_state``, a promotion)
runs against a scripted MLflow REST server.
"""

from __future__ import annotations

from tests.unit.layout.probe import run_probe

NO_MLFLOW = ("mlflow", "modeldeploy.registry.mlflow_client")


def test_no_operator_module_imports_mlflow() -> None:
    probe = run_probe(
        NO_MLFLOW,
        """
        import importlib, pkgutil
        import modeldeploy.operator as operator
        names = [m.name for m in pkgutil.walk_packages(operator.__path__, "modeldeploy.operator.")]
        for name in names:
            importlib.import_module(name)
        import modeldeploy.cli, modeldeploy.registry.watcher, modeldeploy.registry.webhooks
        RESULT["modules"] = len(names)
        """,
    )
    assert probe.result["modules"] > 50
    assert probe.attempts == []


def test_the_operators_registry_path_runs_without_mlflow() -> None:
    probe = run_probe(
        NO_MLFLOW,
        """
        import json, threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from urllib.parse import parse_qs, urlsplit

        ALIASES = {"champion": "1", "challenger": "2"}
        TAGS = {}

        class MLflow(BaseHTTPRequestHandler):
            def _reply(self, body):
                data = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self):
                url = urlsplit(self.path)
                q = {k: v[0] for k, v in parse_qs(url.query).items()}
                if url.path.endswith("/registered-models/get"):
                    aliases = [{"alias": a, "version": v} for a, v in ALIASES.items()]
                    self._reply({"registered_model": {"name": q["name"], "aliases": aliases}})
                elif url.path.endswith("/model-versions/get"):
                    tags = [{"key": k, "value": v} for (ver, k), v in TAGS.items()
                            if ver == q["version"]]
                    self._reply({"model_version": {"name": q["name"], "version": q["version"],
                                                   "source": "models:/m-" + q["version"],
                                                   "tags": tags}})
                else:
                    self._reply({})

            def _body(self):
                return json.loads(self.rfile.read(int(self.headers["Content-Length"])))

            def do_POST(self):
                body = self._body()
                if self.path.endswith("/registered-models/alias"):
                    ALIASES[body["alias"]] = body["version"]
                else:
                    TAGS[(body["version"], body["key"])] = body["value"]
                self._reply({})

            def do_DELETE(self):
                ALIASES.pop(self._body()["alias"], None)
                self._reply({})

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), MLflow)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}"

        from modeldeploy.operator import registry_port
        from modeldeploy.operator.api.types import parse_spec
        from modeldeploy.operator.handlers import startup

        direct = startup._registry_for(url)
        cached = startup._cached(direct, registry_port.AliasCache(max_age=30), url)
        client = cached("")
        spec = parse_spec({"model": {"name": "m"}})
        state = registry_port.read_state(client, spec)
        RESULT["client"] = type(direct("")).__name__
        RESULT["read"] = [state.available, state.stable.version, state.candidate.version]
        registry_port.promote(client, spec, "2", "all checks passed")
        after = registry_port.read_state(client, spec)
        RESULT["promoted"] = [after.stable.version, after.candidate]
        server.shutdown()
        """,
    )
    assert probe.attempts == []
    assert probe.result == {
        "client": "RestRegistry",
        "read": [True, "1", "2"],
        "promoted": ["2", None],
    }


def test_the_long_running_commands_load_no_other_part() -> None:
    """``modeldeploy operator ...`` and ``local ...`` parse without the serving stack."""
    probe = run_probe(
        (*NO_MLFLOW, "kserve", "pandas", "fastapi", "torch", "modeldeploy.serving.cli"),
        """
        import contextlib, io
        from modeldeploy import cli
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            RESULT["crd"] = cli.main(["operator", "crd"])
            try:
                cli.main(["local", "--help"])
            except SystemExit as exit:
                RESULT["local_help"] = exit.code
        RESULT["printed_crd"] = "CustomResourceDefinition" in out.getvalue()
        """,
    )
    assert probe.attempts == []
    assert probe.result == {"crd": 0, "local_help": 0, "printed_crd": True}
