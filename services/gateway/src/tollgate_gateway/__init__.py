"""tollgate-gateway."""
