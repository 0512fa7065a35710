"""sdialect package."""
