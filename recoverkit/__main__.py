"""Allows ``python -m recoverkit``."""

from recoverkit.cli.main import main

main()
