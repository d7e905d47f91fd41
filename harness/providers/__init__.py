"""Providers start real servers, wait for readiness with a deadline, and stop them."""
