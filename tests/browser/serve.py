"""Serve the portal's real ASGI app (HTTP and WebSockets) for browser tests.

Run by the `portal_server` fixture as ``python -m tests.browser.serve PORT_FILE``: binds
127.0.0.1 on a free port chosen by the kernel, writes the port number to PORT_FILE, then serves
until terminated. Binding before writing the port means there is no window in which another
process could take the port between choosing and listening.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import uvicorn

from kraken_portal.serve import APP, OPTIONS


def main(port_file: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # The same server options as production (kraken_portal.serve), on our own socket.
    config = uvicorn.Config(APP, lifespan="off", log_level="warning", **OPTIONS)
    server = uvicorn.Server(config)
    tmp = Path(port_file + ".tmp")
    tmp.write_text(str(port))
    tmp.rename(port_file)  # Atomic: the fixture never reads half a number.
    server.run(sockets=[sock])


if __name__ == "__main__":
    main(sys.argv[1])
