"""tollgate-auth."""
