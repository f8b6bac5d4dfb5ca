"""The composition root: the one place that may import every package of Updraft.

The node packages (``scheduler``, ``executors``, ``bus``, ``web``) each talk to the others
only through the store or the bus, and the ``updraft`` package (what DAG files import and
every node shares) imports none of them. What has to combine them lives here:

- ``composition.standalone``: ``updraft standalone``, which starts NATS, the store, the
  scheduler with an executor and the web server in one process tree;
- ``composition.cli``: the subcommands of ``updraft dags`` and ``updraft tasks`` that reach
  a node package (``--local`` parses with the DAG processor's pool, ``--via-bus`` talks to
  the scheduler over NATS, ``backfill`` may run a scheduler, ``logs --follow`` reads the
  bus).

Nothing imports this package (import-linter checks it): the ``updraft`` command finds these
commands through the ``updraft.cli`` entry points, like any other registered command.
See ``docs/adr/0008-composition-root.md``.
"""
