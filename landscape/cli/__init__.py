"""cli: see docs/ARCHITECTURE.md."""
