"""Real servers for Tollgate's tests and ``make run``: redis-server, demo upstream APIs, service
processes. Nothing here is a mock: each helper starts a real process on loopback and stops it by
the PID it started."""
