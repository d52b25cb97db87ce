"""Launchers and operations: the local stack, cluster configs, the ``matchday`` CLI."""
