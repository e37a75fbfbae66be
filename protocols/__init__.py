"""relaxlab protocols layer."""
