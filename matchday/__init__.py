"""matchday: the shop itself. Nothing in this package imports Ray."""
