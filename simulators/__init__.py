"""relaxlab simulators layer."""
