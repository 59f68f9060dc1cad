"""Each part imports only what its extra installs (see pyproject's optional-dependencies).

The operator image installs ``.[operator]`` and the predictor image ``.[serving]``; these
tests run the parts' entry modules in a fresh interpreter that refuses the packages the
image would not have, and fail on any attempt to import them, even a guarded one.
"""

from __future__ import annotations

from tests.unit.layout.probe import DEV_ONLY, SERVING_EXTRA, run_probe


def test_operator_import_closure_needs_no_serving_or_dev_package() -> None:
    probe = run_probe(
        SERVING_EXTRA + DEV_ONLY,
        """
        import modeldeploy.operator.runner
        import modeldeploy.operator.handlers
        import modeldeploy.operator.reconcile
        RESULT["loaded"] = "modeldeploy.operator.handlers" in sys.modules
        """,
    )
    assert probe.result["loaded"] is True
    assert probe.attempts == []


def test_product_cli_offers_the_operator_commands_without_the_serving_extra() -> None:
    probe = run_probe(
        SERVING_EXTRA + DEV_ONLY,
        """
        import argparse
        from modeldeploy.cli import build_parser
        parser = build_parser()
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        RESULT["commands"] = sorted(sub.choices)
        RESULT["epilog"] = parser.epilog
        """,
    )
    assert {"operator", "rollout", "registry"} <= set(probe.result["commands"])
    assert "serve" not in probe.result["commands"]
    assert "modeldeploy.serving.cli" in probe.result["epilog"]
    # Only the serving parts tried (and were refused) a serving package; no tools at all.
    assert probe.attempts
    assert not [name for name in probe.attempts if name.startswith("modeldeploy.tools")]


def test_serving_runtime_needs_no_training_code_corpus_or_operator() -> None:
    probe = run_probe(
        (*DEV_ONLY, "modeldeploy.operator"),
        """
        import modeldeploy.serving.server
        import modeldeploy.serving.router.app
        import modeldeploy.serving.prober.__main__
        from modeldeploy.serving.backends import factory
        from modeldeploy.serving.prober import load_golden
        texts, labels = factory._validation_split()
        golden = load_golden()
        RESULT["validation"] = len(texts)
        RESULT["golden"] = len(golden.texts)
        """,
    )
    assert probe.attempts == []
    assert probe.result["validation"] > 0
    assert probe.result["golden"] > 0
