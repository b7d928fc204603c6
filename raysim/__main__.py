"""``python -m raysim`` is the ``raysim`` command."""

from raysim.cli import command

command()
