"""The scheduler node package."""
