"""The executors node package."""
