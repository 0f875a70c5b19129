"""A real HTTP server on 127.0.0.1 (loopback, not the network) serving the files of one folder, in a thread.

Tests point torchvision's mirror lists at it to download datasets the test wrote itself, in their real
formats, through the same code path a user's first download takes.
"""
from __future__ import annotations

import functools
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class FileServer:
    """``with FileServer(folder) as server: server.url("train-images-idx3-ubyte.gz")``; ``requests`` lists the
    paths asked for."""

    def __init__(self, folder: Path):
        self.requests: list[str] = []
        server = self

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                server.requests.append(self.path)
                super().do_GET()

            def log_message(self, *args) -> None:  # keep the test output clean
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(folder)))
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="file-http-server", daemon=True)

    def url(self, path: str = "") -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/{path}"

    def __enter__(self) -> FileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
