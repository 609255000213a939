"""What every benchmark result records about when and where it ran."""

from __future__ import annotations

import datetime as dt
import os
import platform


def utc_now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def machine_info() -> dict[str, object]:
    """CPU count, processor, and the versions of Python and the libraries the benchmarks use."""
    import numpy as np
    import pandas as pd

    import riskmodel

    info: dict[str, object] = {
        "cpus": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "riskmodel": riskmodel.__version__,
    }
    try:
        import torch

        info["torch"] = torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    return info


def publish(report: dict, path, write: bool = True) -> None:
    """Print ``report`` as JSON and, unless ``write`` is False, save it to ``path`` (a results file)."""
    import json
    from pathlib import Path

    text = json.dumps(report, indent=2, default=str)
    print(text)
    if write:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(text + "\n")
