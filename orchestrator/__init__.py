"""relaxlab orchestrator layer."""
