"""Ray actor wrappers. Logic lives in ``matchday``; these files only host it on Ray."""
