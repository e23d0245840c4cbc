"""What two or more Tollgate services truly share: settings base, logging, Redis, routes, events."""
