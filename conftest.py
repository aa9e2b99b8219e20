"""Makes the public API and torch available to every doctest."""

import pytest
import torch

import recoverkit


@pytest.fixture(autouse=True)
def _doctest_names(doctest_namespace):
    doctest_namespace["torch"] = torch
    for name in recoverkit.__all__:
        doctest_namespace[name] = getattr(recoverkit, name)
