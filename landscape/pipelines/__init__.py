"""pipelines: see docs/ARCHITECTURE.md."""
