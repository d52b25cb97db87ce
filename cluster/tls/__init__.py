"""TLS in front of the HAProxy ingress: a second HAProxy that terminates TLS (ADR 0012)."""
