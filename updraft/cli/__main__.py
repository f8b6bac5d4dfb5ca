"""``python -m updraft.cli``: the same as the ``updraft`` command."""

from updraft.cli import main

main()
