"""A secrets backend registered as ``sample_dict``: variables and connections from its
keyword arguments (as ``[secrets] backends`` gives them)."""

from __future__ import annotations

from typing import ClassVar

from updraft.secrets_backends import BaseSecretsBackend


class DictSecretsBackend(BaseSecretsBackend):
    """Serves ``variables`` (key -> text) and ``connections`` (id -> URI)."""

    lookups: ClassVar[list] = []

    def __init__(self, variables: dict | None = None, connections: dict | None = None) -> None:
        self.variables = dict(variables or {})
        self.connections = dict(connections or {})

    def get_variable(self, key: str) -> str | None:
        type(self).lookups.append(("variable", key))
        return self.variables.get(key)

    def get_conn_value(self, conn_id: str) -> str | None:
        type(self).lookups.append(("connection", conn_id))
        return self.connections.get(conn_id)
