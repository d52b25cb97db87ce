"""Operators' tools that need no Ray: encrypted backups, restores and restore drills (ADR 0010)."""
