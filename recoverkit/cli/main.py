"""Entry point of the ``recoverkit`` command: a group of subcommands.

Each subcommand lives in its own module under ``recoverkit.cli`` and is added
to the group in :data:`_SUBCOMMANDS`. Modules are imported only when their
command runs, so ``recoverkit --help`` stays fast.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from recoverkit import __version__

__all__ = ["main"]

# command name -> "module:attribute" of a click command
_SUBCOMMANDS: dict[str, str] = {
    "average": "recoverkit.cli.average:average",
    "convert": "recoverkit.cli.convert:convert",
    "inspect": "recoverkit.cli.inspect:inspect",
    "ls": "recoverkit.cli.ls:ls",
    "plot": "recoverkit.cli.plot:plot",
    "prune": "recoverkit.cli.prune:prune",
    "remap": "recoverkit.cli.remap:remap",
    "run": "recoverkit.cli.run:run",
    "verify": "recoverkit.cli.verify:verify",
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_SUBCOMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = _SUBCOMMANDS.get(cmd_name)
        if target is None:
            return None
        module_name, attribute = target.split(":")
        return getattr(importlib.import_module(module_name), attribute)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="recoverkit")
@click.option("-v", "--verbose", count=True, help="Log more: -v for INFO, -vv for DEBUG.")
def cli(verbose: int) -> None:
    """Save, inspect and recover checkpoints of PyTorch experiments."""
    level = logging.WARNING - 10 * min(verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> None:
    """Run the command line with ``argv`` (default: ``sys.argv[1:]``)."""
    cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="recoverkit")
