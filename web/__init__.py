"""The web node package."""
