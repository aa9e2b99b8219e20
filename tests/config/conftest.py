"""Helpers shared by the config tests: writing recipe files and small models."""

from __future__ import annotations

import pathlib
import textwrap

import pytest


@pytest.fixture
def write_config(tmp_path: pathlib.Path):
    """Return a function that writes dedented YAML text to ``tmp_path / name``."""

    def write(name: str, text: str) -> pathlib.Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        return path

    return write
