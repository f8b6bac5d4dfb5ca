"""A sample Updraft plugin package: each module is one extension, registered in pyproject.toml."""
