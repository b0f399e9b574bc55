"""Unique loopback addresses for servers' public IPv4.

Linux routes all of 127.0.0.0/8 to ``lo``, so 127.0.0.N needs no alias; an address is handed
out only if nothing (another localcloud, a leftover VM) already listens on its port 22.
"""

from __future__ import annotations

import errno
import ipaddress
import random
import socket


def port_free(ip: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
        except OSError as e:
            if e.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class LoopbackAllocator:
    def __init__(self, first: str = "127.0.0.2", count: int = 250 * 256, port: int = 22) -> None:
        self.first = ipaddress.IPv4Address(first)
        self.count = count
        self.port = port
        # QEMU binds the address itself, after our probe: two localclouds starting from the
        # same address could both pick it. Starting at a random place makes that unlikely.
        self._cursor = random.randrange(count)

    def allocate(self, in_use: set[str]) -> str:
        # Round-robin so a just-freed address (whose VM may still be going away) is reused last.
        for _ in range(self.count):
            ip = self.first + self._cursor
            self._cursor = (self._cursor + 1) % self.count
            if ip.packed[-1] in (0, 255):
                continue
            s = str(ip)
            if s not in in_use and port_free(s, self.port):
                return s
        raise RuntimeError("no free loopback address for a new server")
