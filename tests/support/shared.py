"""Locating ``shared/`` (SageMaker Distribution data) beside the repository."""

from __future__ import annotations

from pathlib import Path

ENV_OUT_441 = "sagemaker-distribution-4.4.1-cpu.env.out"
ENV_OUT_430 = "sagemaker-distribution-4.3.0-cpu.env.out"


def shared_data(name: str) -> Path:
    """``shared/data/<name>`` beside the repository (CI) or in ``/work/shared``; fails loudly."""
    for candidate in (Path(__file__).resolve().parents[3] / "shared", Path("/work/shared")):
        path = candidate / "data" / name
        if path.is_file():
            return path
    raise AssertionError(f"cannot find shared/data/{name} beside the repository or in /work/shared")
