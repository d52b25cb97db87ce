"""Supplier connectors: stock levels from suppliers, applied only through the inventory engine.

- ``signing``: HMAC-SHA256 over timestamp + body under each supplier's own secret (pure).
- ``parsing``: push messages and pulled or uploaded feeds (JSON, CSV) into lines (pure).
- ``apply``: mapped lines through the engine (``set_on_hand`` for levels, ``restock`` for
  deltas up), request ids derived from (supplier, message or sync, line).
- ``push``: a signed message, verified, idempotent by message id, applied.
- ``pull``: a supplier's HTTP feed, conditional, bounded, retried, behind a breaker.
- ``bulk``: syncs queued until the shop's measured load is low, applied in chunks.
- ``runner``, ``load``: the bulk-sync runner and the engine-load probe it waits on.
- ``worker``: the runner and the poller in one loop (actors/supplier_worker.py hosts it).
- ``admin``: suppliers, secrets and mappings for operators.

No Ray, no HTTP framework: ``matchday.web`` and ``actors`` wrap these (ADR 0025).
"""
