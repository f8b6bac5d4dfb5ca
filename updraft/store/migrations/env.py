"""Alembic environment of the store, driven by ``updraft.store.migrate`` (no alembic.ini).

The caller passes an open connection in ``config.attributes["connection"]`` so that it can hold
a migration lock on that same connection. Offline mode (``--sql``) renders against the URL in
``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context

from updraft.store.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_kwargs(dialect_name: str) -> dict:
    # SQLite cannot ALTER most things in place: batch mode copies the table instead.
    return {
        "target_metadata": target_metadata,
        "render_as_batch": dialect_name == "sqlite",
        "compare_type": True,
    }


def run_migrations_offline() -> None:
    url = config.get_main_option("sqlalchemy.url")
    from sqlalchemy.engine import make_url

    context.configure(url=url, literal_binds=True, **_configure_kwargs(make_url(url).get_backend_name()))
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is None:
        from updraft.store.engine import get_engine

        with get_engine(config.get_main_option("sqlalchemy.url") or None).connect() as connection:
            context.configure(connection=connection, **_configure_kwargs(connection.dialect.name))
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
        return
    context.configure(connection=connection, **_configure_kwargs(connection.dialect.name))
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
