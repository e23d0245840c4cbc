"""The Redis clients the services use.

- ``url``: what a ``redis://`` / ``rediss://`` URL means, for both clients alike.
- ``client``: the redis-py pool (``create_redis``), Lua scripts by SHA, error descriptions.
- ``resp``: the lean RESP client of the hot paths (``LeanRedis``).
"""
