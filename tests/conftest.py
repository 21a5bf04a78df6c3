"""Shared fixtures: the repository root and a small spike file of scikit-learn's digits.

Tests live in folders that mirror the packages (``neurons/``, ``fused/``, ``pipeline/``, ``cli/``,
``data_prep/``, ``validation/``, ``library/`` for the top-level library modules, ``architecture/`` for
the package rules, ``docs/`` for the README). Tests that take more than about five seconds carry the
``slow`` marker, so ``make test-fast`` (``-m "not slow"``) stays quick.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    """The repository's top folder (README.md, pyproject.toml, the packages)."""
    return ROOT


@pytest.fixture(scope="session")
def digits(tmp_path_factory) -> str:
    """scikit-learn's 1,797 digits as a rate-coded spike file, T = 8, seed 0 (read-only for tests)."""
    from data_prep import digits as converter

    return str(converter.convert(tmp_path_factory.mktemp("data") / "digits.h5", time_steps=8, seed=0))
