"""What every benchmark result records about when and where it ran (shared with the suite)."""

from __future__ import annotations

from riskmodel.benchmarking.speed import machine_info, utc_now

__all__ = ["machine_info", "publish", "utc_now"]


def publish(report: dict, path, write: bool = True) -> None:
    """Print ``report`` as JSON and, unless ``write`` is False, save it to ``path`` (a results file)."""
    import json
    from pathlib import Path

    text = json.dumps(report, indent=2, default=str)
    print(text)
    if write:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
