"""The Redis clients the services use.

- ``url``: what a ``redis://`` / ``rediss://`` (or ``+cluster``) URL means, for both clients alike.
- ``client``: the redis-py pool or Redis Cluster client (``create_redis``), the lean client for a
  URL (``create_lean``), Lua scripts by SHA, error descriptions.
- ``resp``: the lean RESP client of the hot paths (``LeanRedis``), one server.
- ``cluster``: the lean client on a Redis Cluster (``LeanCluster``): MOVED, ASK, TRYAGAIN.
- ``slots``: the cluster's key slots and slot map, and what a redirection says (pure).
"""
