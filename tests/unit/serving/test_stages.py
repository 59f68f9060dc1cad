"""The predict verb without kserve's per-request lookups: same stages, same histograms."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kserve import Model
from kserve.metrics import POST_HIST_TIME, PRE_HIST_TIME, PREDICT_HIST_TIME

from modeldeploy.serving.stages import StageTimers, run_predict


class Staged(Model):
    """Records the order of its stages; optionally fails in one of them."""

    def __init__(self, name: str, fail_in: str = "", headers: bool = True) -> None:
        super().__init__(name, return_response_headers=headers)
        self.ready = True
        self.calls: list[str] = []
        self.fail_in = fail_in

    def _step(self, stage: str) -> None:
        self.calls.append(stage)
        if stage == self.fail_in:
            raise ValueError(f"{stage} failed")

    async def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Any:
        self._step("preprocess")
        return {"pre": payload}

    def validate(self, payload: Any) -> Any:
        self._step("validate")
        return payload

    async def predict(self, payload: Any, headers: Any = None, response_headers: Any = None) -> Any:
        self._step("predict")
        if response_headers is not None:
            response_headers["x-request-id"] = "rid"
        return {"predicted": payload}

    async def postprocess(
        self, result: Any, headers: Any = None, response_headers: Any = None
    ) -> Any:
        self._step("postprocess")
        if response_headers is not None:
            response_headers["x-extra"] = "post"
        return {"post": result}


def counts(name: str) -> tuple[float, float, float]:
    def count(histogram: Any) -> float:
        for metric in histogram.collect():
            for sample in metric.samples:
                if sample.name.endswith("_count") and sample.labels.get("model_name") == name:
                    return sample.value
        return 0.0

    return count(PRE_HIST_TIME), count(PREDICT_HIST_TIME), count(POST_HIST_TIME)


@pytest.mark.parametrize("with_headers", [True, False])
def test_run_predict_answers_and_times_exactly_as_kserve_does(with_headers: bool) -> None:
    ours, theirs = (
        Staged("ours-" + str(with_headers), headers=with_headers),
        Staged("theirs-" + str(with_headers), headers=with_headers),
    )
    timers = StageTimers.for_model(ours.name)
    got = asyncio.run(run_predict(ours, timers, {"instances": ["a"]}, {"h": "1"}))
    want = asyncio.run(theirs({"instances": ["a"]}, {"h": "1"}))
    assert got == want
    assert ours.calls == theirs.calls == ["preprocess", "validate", "predict", "postprocess"]
    assert counts(ours.name) == counts(theirs.name) == (1.0, 1.0, 1.0)


@pytest.mark.parametrize("stage", ["preprocess", "predict", "postprocess"])
def test_a_failing_stage_is_still_timed_as_kserve_times_it(stage: str) -> None:
    ours, theirs = Staged(f"ours-{stage}", stage), Staged(f"theirs-{stage}", stage)
    with pytest.raises(ValueError, match=f"{stage} failed"):
        asyncio.run(run_predict(ours, StageTimers.for_model(ours.name), {}, None))
    with pytest.raises(ValueError, match=f"{stage} failed"):
        asyncio.run(theirs({}, None))
    assert ours.calls == theirs.calls
    assert counts(ours.name) == counts(theirs.name)
