"""Default connection limits of the server (a module of constants: the CLI's option parser reads them
without importing uvicorn). :mod:`engine.server.protocol` enforces them."""

#: Seconds a connection may stay open without sending a byte (fresh, or after its last response).
DEFAULT_IDLE_TIMEOUT_S = 10.0
#: Seconds from a request's first byte to its last (headers and body), after which it gets 408.
DEFAULT_REQUEST_TIMEOUT_S = 30.0
#: Listen backlog. asyncio accepts up to this many connections in one burst before the protocol can
#: drop any (``selector_events._accept_connection``), so the burst must fit in the reserve below.
ACCEPT_BACKLOG = 128
#: Descriptors kept free for everything else the process opens (model files, logs, the app's own) and
#: for one accept burst.
RESERVED_FDS = 2 * ACCEPT_BACKLOG
#: Most connections ever allowed (also where the descriptor limit is unknown or unlimited).
MAX_CONNECTIONS_CEILING = 4096
