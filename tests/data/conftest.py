"""Helpers for the data tests: tiny files in tmp dirs and a one-call loader."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def load(tmp_path: Path):
    """load(data_mapping, seed=0) -> Splits, with paths relative to tmp_path."""
    from kcli.data import DataSpec, load_data

    def _load(data: dict, seed: int = 0):
        return load_data(DataSpec.model_validate(data), tmp_path, seed)

    return _load


@pytest.fixture
def write_csv(tmp_path: Path):
    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(text)
        return path

    return _write
