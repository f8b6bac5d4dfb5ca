"""Hooks: clients for outside systems, configured from connections (see ``hooks.base``)."""
