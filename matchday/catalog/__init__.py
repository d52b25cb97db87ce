"""The product catalogue: models, the cached read service, the demo catalogue."""
