"""Marketplace channels: API keys, allocations, and sales through the engine (ADR 0028)."""
