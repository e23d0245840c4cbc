"""The services' own HTTP/1.1 server, which the hot paths of gateway and auth run on.

- ``server``: ``HttpServer`` listens, owns its connections and drains them on a stop.
- ``connection``: one client connection: parsing, keep-alive, limits, the refusals.
- ``exchange``: what a handler sees and returns (``Incoming`` -> ``Reply``), the layer both
  others stand on.
- ``asgibridge``: the admin apps (FastAPI) served by the same server, off the hot path.
- ``workers``: the server process: signals to a graceful stop, optional forked workers.
"""
