"""tollgate-operator."""
