"""The SQL store: tables (``models``), engines and sessions (``engine``), Alembic migrations
(``migrate``). Nothing is imported here so that ``import updraft.store`` stays cheap."""
