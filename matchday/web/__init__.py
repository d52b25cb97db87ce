"""HTTP for the shop: FastAPI apps built from plain services, no Ray.

``serve/`` wraps each app in a Ray Serve deployment; tests drive the same apps in-process.
"""
