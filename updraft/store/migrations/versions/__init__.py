"""Alembic revisions of the store schema, oldest first by their numeric prefix."""
