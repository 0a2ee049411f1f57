"""Fixtures of the feature tests."""

from __future__ import annotations

import pytest
from synthetic_video import write_case


@pytest.fixture(scope="session")
def swin():
    from mgenet.features.swin import build_swin_stages12

    return build_swin_stages12(seed=0)


@pytest.fixture
def case(tmp_path):
    return write_case(tmp_path / "case")
