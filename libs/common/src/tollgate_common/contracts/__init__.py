"""What the services agree on over Redis: each module is one shared contract.

- ``routes``: the ApiBackend spec and the route table the operator publishes.
- ``events``: the alert and usage streams.
- ``cachekeys``: the response cache's keys and its purge channel.
"""
