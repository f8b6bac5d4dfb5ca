"""Alembic environment and revisions of the store schema (configured in ``updraft.store.migrate``)."""
