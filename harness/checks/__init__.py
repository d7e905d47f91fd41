"""Checks: decide, within a bound, whether the world converged and whether anything leaked."""
