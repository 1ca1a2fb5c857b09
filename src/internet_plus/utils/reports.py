"""Writing the JSON reports of the measuring commands (benchmark, loss memory, input pipeline)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_json_report(path: Path | None, report: Any) -> Path | None:
    """Write ``report`` as indented JSON to ``path`` (its folder is created); nothing when ``path`` is None."""
    if path is None:
        return None
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path


__all__ = ["write_json_report"]
