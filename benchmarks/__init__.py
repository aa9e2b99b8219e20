"""Benchmarks of recoverkit's save, load, listing and averaging paths.

Run ``python -m benchmarks`` (or ``python -m benchmarks --quick``). Every
figure is a ratio against a baseline measured in the same run on the same
data, so the table stays meaningful on a busy or slow machine.
"""
