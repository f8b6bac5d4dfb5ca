"""The bus node package."""
