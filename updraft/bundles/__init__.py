"""Versioned DAG bundles (ADR 12): the DAGs folder as content-addressed versions.

- ``version``: the manifest and version of a folder, its zip archive, verification.
- ``refs``: how a try request names a version's file, where versions are cached.
- ``cache``: a worker's local copy of a version, fetched from the store by hash, verified,
  kept on disk; the reference a try request carries (``bundle_fileloc``).
- ``updraft.store.bundles``: the ``dag_bundle`` table.
"""
