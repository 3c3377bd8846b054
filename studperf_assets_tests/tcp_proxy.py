"""A TCP proxy that can be taken down and brought back: a real endpoint outage for tests.

While down, its port refuses connections and every open connection is cut, exactly what a
client sees when a service restarts; brought back, it listens on the same port again.
``lose_response_to(marker)`` forwards the next request carrying ``marker`` and cuts the
connection instead of returning the answer: the request took effect, the client cannot know.
``down_at(marker, seconds)`` takes the endpoint down when the next request carrying
``marker`` arrives (that request never reaches the server) and brings it back later: an
outage that starts at exactly that call.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from typing import Any

from studperf_assets.local.moto import free_port


class TcpProxy:
    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = free_port()
        self._listener: socket.socket | None = None
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._lose_marker: bytes | None = None
        self._down_marker: tuple[bytes, float] | None = None
        self.lost_responses = 0
        self.up()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def up(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def lose_response_to(self, marker: bytes) -> None:
        """Cut the connection of the next request containing ``marker`` once it has an answer."""
        with self._lock:
            self._lose_marker = marker

    def down_at(self, marker: bytes, seconds: float) -> None:
        """Go down for ``seconds`` when the next request containing ``marker`` arrives."""
        with self._lock:
            self._down_marker = (marker, seconds)

    def _outage(self, seconds: float) -> None:
        self.down()
        threading.Timer(seconds, self.up).start()

    def down(self) -> None:
        with self._lock:
            if self._listener is not None:
                self._listener.close()
                self._listener = None
            for connection in self._open:
                _close(connection)
            self._open.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:  # closed by down()
                return
            if not self._register(listener, client):
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                _close(client)
                continue
            if not self._register(listener, upstream):
                return
            doomed = threading.Event()  # set when this connection's answer is to be lost
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink, doomed, source is upstream), daemon=True
                ).start()

    def _register(self, listener: socket.socket, connection: socket.socket) -> bool:
        """Track a connection so that down() cuts it; False (and closed) if down() came
        first: a connection accepted just before an outage must not outlive it."""
        with self._lock:
            if self._listener is listener:
                self._open.add(connection)
                return True
        _close(connection)
        return False

    def _pump(
        self, source: socket.socket, sink: socket.socket, doomed: threading.Event, answers: bool
    ) -> None:
        try:
            while data := source.recv(65536):
                if answers and doomed.is_set():
                    with self._lock:
                        self.lost_responses += 1
                    break  # the request reached the server; its answer never reaches the client
                if not answers:
                    outage = None
                    with self._lock:
                        if self._lose_marker is not None and self._lose_marker in data:
                            self._lose_marker = None
                            doomed.set()
                        if self._down_marker is not None and self._down_marker[0] in data:
                            outage, self._down_marker = self._down_marker[1], None
                    if outage is not None:
                        self._outage(outage)  # this request never reaches the server
                        break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for connection in (source, sink):
                _close(connection)
                with self._lock:
                    self._open.discard(connection)


def _close(connection: Any) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)
    connection.close()
