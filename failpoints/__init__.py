"""Placeholder; the failpoints package is being written."""
