"""Default connection limits of the server (a module of constants: the CLI's option parser reads them
without importing uvicorn). :mod:`engine.server.protocol` enforces them."""

#: Seconds a connection may stay open without sending a byte (fresh, or after its last response).
DEFAULT_IDLE_TIMEOUT_S = 10.0
#: Seconds from a request's first byte to its last (headers and body), after which it gets 408.
DEFAULT_REQUEST_TIMEOUT_S = 30.0
#: Listen backlog. asyncio accepts up to this many connections per event-loop pass
#: (``selector_events._accept_connection``), and a connection reaches the protocol's ``connection_made``
#: (where the cap evicts an idle one) two passes later (a task, then a ``call_soon``), whose close frees
#: its descriptor one pass after that: so up to about three bursts are open beyond the cap at once, and
#: they must fit in the reserve below. (With 128 and a reserve of two bursts, a fresh-clone run once hit
#: EMFILE in test_idle_connections_beyond_the_descriptor_limit.)
ACCEPT_BACKLOG = 64
#: Descriptors kept free for everything else the process opens (model files, logs, the app's own) and
#: for the accept bursts in flight (see ACCEPT_BACKLOG).
RESERVED_FDS = 4 * ACCEPT_BACKLOG
#: Most connections ever allowed (also where the descriptor limit is unknown or unlimited).
MAX_CONNECTIONS_CEILING = 4096
