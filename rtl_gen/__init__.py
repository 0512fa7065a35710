"""rtl_gen package."""
