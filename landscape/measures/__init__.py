"""measures: see docs/ARCHITECTURE.md."""
