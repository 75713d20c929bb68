"""TCP_NODELAY on the connections MLflow's REST client opens.

Why this exists: urllib3 sends a request's headers and its body in two writes. Without
TCP_NODELAY, Nagle's algorithm holds the second (small) write until the first is
acknowledged, and on a kept-alive connection the server's kernel delays that ACK by up to
40 ms, so every POST to MLflow would stall ~40 ms on a reused connection while a fresh one
(still in quick-ACK mode) would not. urllib3 sets TCP_NODELAY by default
(``HTTPConnection.default_socket_options``), and MLflow's ``TCPKeepAliveHTTPAdapter``
(``mlflow.utils.request_utils``) builds its socket options from that default, so it is in
place as long as nothing in the process removed it. This module is the one supported hook
we rely on: it puts the option back if it is missing, before the first MLflow session is
made (tests read the option off the live sockets).
"""

from __future__ import annotations

import socket

_NODELAY = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def install_nodelay() -> bool:
    """Make sure new urllib3 connections (MLflow's included) set TCP_NODELAY; True when
    it had to be added back."""
    from urllib3.connection import HTTPConnection

    options = list(HTTPConnection.default_socket_options or [])
    if _NODELAY in options:
        return False
    HTTPConnection.default_socket_options = [*options, _NODELAY]
    return True
