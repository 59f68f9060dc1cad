"""Render the held-out sentences the serving package ships (parity set, golden set).

The serving runtime reads ``modeldeploy.serving.data`` instead of importing this
package, so those files are generated here, once, from the fixed split:
``modeldeploy-dev checkpoints export-heldout`` writes them and ``--check`` (and a unit
test) compares them byte for byte with what :func:`render` produces now.
"""

from __future__ import annotations

import json
from pathlib import Path

from modeldeploy.serving import data
from modeldeploy.tools.checkpoints.data import SplitName, load_split

# shipped file -> the part of the split it holds
EXPORTS: dict[str, SplitName] = {data.VALIDATION: "validation", data.TEST: "test"}


def render(part: SplitName) -> str:
    """One JSON object per line, in split order.

    Non-ASCII characters are escaped: some sentences hold characters that
    ``str.splitlines`` treats as line breaks, which would cut a record in two.
    """
    split = load_split(part)
    return "".join(
        json.dumps({"text": text, "label": int(label)}) + "\n"
        for text, label in zip(split.texts, split.labels, strict=True)
    )


def data_dir() -> Path:
    """The source folder of ``modeldeploy.serving.data`` (an editable install's checkout)."""
    return Path(data.__file__).resolve().parent


def stale(directory: Path | None = None) -> list[str]:
    """Shipped files whose content differs from what the split renders now."""
    folder = directory or data_dir()
    return [
        name
        for name, part in EXPORTS.items()
        if not (folder / name).is_file()
        or (folder / name).read_text(encoding="utf-8") != render(part)
    ]


def export(directory: Path | None = None) -> list[Path]:
    """Write every shipped file; returns the paths written."""
    folder = directory or data_dir()
    written = []
    for name, part in EXPORTS.items():
        path = folder / name
        path.write_text(render(part), encoding="utf-8", newline="\n")
        written.append(path)
    return written
