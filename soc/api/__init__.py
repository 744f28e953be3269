"""The HTTP API (FastAPI): health, metrics, and the versioned analyst API under /api/v1."""
