"""``python -m llmedic`` is the ``llmedic`` command."""

from llmedic.cli import main

main()
