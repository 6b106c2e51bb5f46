"""A TCP proxy on 127.0.0.1 that a test can cut and restore: a database outage on demand."""

from __future__ import annotations

import socket
import threading


class TcpProxy:
    def __init__(self, upstream: tuple[str, int]):
        self.upstream = upstream
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.listener.listen(64)
        self._up = threading.Event()
        self._up.set()
        self._silent = threading.Event()
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()  # outage: refuse at once, like a dead server's RST
                continue
            if self._silent.is_set():
                with self._lock:
                    self._conns.append(client)  # accepted (the kernel ACKs), never answered
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                # No timeout on the relay: a recv timeout would close every connection idle
                # for 5 s (in a silent partition too, which must stay silent, not close).
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:  # cut() clears _up before it takes the lock: no pair outlives it
                if not self._up.is_set():
                    for s in (client, server):
                        s.close()
                    continue
                self._conns += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                if not self._silent.is_set():  # a silent partition swallows everything
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        """The database goes away: existing connections drop, new ones are refused."""
        self._up.clear()
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass

    def silence(self) -> None:
        """A silent partition: connections stay open and new ones are accepted, but nothing
        is forwarded either way (no RST, no FIN: only a deadline can notice)."""
        self._silent.set()

    def restore(self) -> None:
        self._silent.clear()
        self._up.set()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()
