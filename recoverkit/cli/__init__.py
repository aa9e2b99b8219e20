"""The ``recoverkit`` command line."""
