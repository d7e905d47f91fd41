"""Turning a run's journal into something a person reads: timelines, verdict tables, bundles."""
