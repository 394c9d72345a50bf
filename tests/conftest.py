"""Shared test setup: one torch thread (CI has 2 cores) and run folders under pytest's tmp dirs."""
import os

import pytest
import torch

torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _isolated_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("LDRKIT_RUNS", str(tmp_path / "runs"))
    monkeypatch.delenv("LDRKIT_PROFILE", raising=False)
