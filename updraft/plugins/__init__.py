"""Extension points: what a deployment adds to Updraft without changing it.

Each kind of extension is an entry-point group ``updraft.<kind>`` (Updraft's own executors,
timetables, priority-weight strategies, secrets backends and notifiers are registered there
like anyone else's), and the plugins folder (``[core] plugins_folder``, default
``$UPDRAFT_HOME/plugins``) adds Airflow-style ``AirflowPlugin`` classes on top.

- :mod:`updraft.plugins.registry`: the one registry every node asks (lazy, cached, broken
  extensions reported by name and never fatal).
- :mod:`updraft.plugins.folder`: loading the plugins folder.
- :mod:`updraft.plugins.base`: ``UpdraftPlugin`` (alias ``AirflowPlugin``), ``WebExtension``
  and ``MenuLink``.

Nothing here is imported by ``import updraft``.
"""
