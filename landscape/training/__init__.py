"""training: see docs/ARCHITECTURE.md."""
