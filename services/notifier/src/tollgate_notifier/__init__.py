"""tollgate-notifier."""
