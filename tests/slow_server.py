"""A real HTTP server on 127.0.0.1 (loopback, not the network) that serves a large body slowly, in a thread.

It sends the headers and a few pieces of the body quickly, then either trickles the rest (``stall=False``)
or sends nothing more until it is closed (``stall=True``), the way a stalled download looks to a client.
Tests use it to stop a download while urllib really reads from a socket.
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PIECE = 1 << 16


class SlowServer:
    """``with SlowServer() as server: server.url("file.gz")``; ``requests`` lists the paths asked for."""

    def __init__(self, size: int = 1 << 30, quick_pieces: int = 2, stall: bool = True, pace_s: float = 0.005):
        self.size, self.quick_pieces, self.stall, self.pace_s = size, quick_pieces, stall, pace_s
        self.requests: list[str] = []
        self.closed = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", str(server.size))
                self.end_headers()
                sent = 0
                try:
                    while sent < server.size and not server.closed.is_set():
                        if sent >= server.quick_pieces * PIECE:
                            if server.stall:
                                server.closed.wait()
                                return
                            server.closed.wait(server.pace_s)
                        piece = min(PIECE, server.size - sent)
                        self.wfile.write(b"\0" * piece)
                        sent += piece
                except OSError:  # the client went away: what a stopped download does
                    return

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="slow-http-server", daemon=True)

    def url(self, path: str = "") -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{path}"

    def __enter__(self) -> SlowServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.closed.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
