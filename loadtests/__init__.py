"""Locust scenarios, match-day surge shapes and the post-run audit (issue 5)."""
