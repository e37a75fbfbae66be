"""relaxlab analysis layer."""
