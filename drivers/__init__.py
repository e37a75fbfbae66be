"""relaxlab drivers layer."""
