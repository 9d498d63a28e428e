"""A CoAP observer in a process of its own, on a raw UDP socket with a small receive buffer.

It stands for a server whose socket the kernel overflows when a client sends faster than it
reads (a Python server on a loaded machine): what does not fit is dropped, as on loopback. It
acknowledges a confirmable notification once it has handled it, as aiocoap does (its ACK
follows the response's callbacks), so the RTT its ACKs show includes the handling and the wait
in its socket's buffer.

    python raw_observer.py PORT COUNT RCVBUF

observes ``/3303/i/5700`` of ``127.0.0.1:PORT`` for i in range(COUNT) (token: i, two bytes),
acknowledges every confirmable notification, and writes JSON lines to stdout: ``{"observing":
COUNT, "observe": N}`` once every observation is answered (N: the greatest Observe number of
those answers), then, for each line ``report`` on stdin, what it has received by then:
``{"latest": {i: value}, "notifications": n, "observe": greatest Observe number seen}``.
It decodes with aiocoap's message parser; nothing else of aiocoap runs.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

import aiocoap
from aiocoap.numbers.codes import Code
from aiocoap.numbers.types import ACK, CON

PROCESSING = 0.0005
"""Seconds a notification takes to handle once read, as a server that decodes and stores each
takes some: it reads at most a couple of thousand a second."""


def main() -> None:
    port, count, rcvbuf = (int(a) for a in sys.argv[1:4])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    latest: dict[int, float] = {}
    answered: set[int] = set()
    notifications = 0
    observe = 0

    def drain() -> None:
        while True:
            try:
                data = sock.recv(2048)
            except (BlockingIOError, ConnectionRefusedError):
                return
            message = aiocoap.Message.decode(data)
            handle(message)
            if message.mtype is CON:
                ack = aiocoap.Message(code=Code.EMPTY)
                ack.mtype, ack.mid = ACK, message.mid
                sock.send(ack.encode())

    def handle(message: aiocoap.Message) -> None:
        nonlocal notifications, observe
        if message.code == Code.CONTENT and message.opt.observe is not None:
            i = int.from_bytes(message.token, "big")
            latest[i] = float(message.payload)
            observe = max(observe, message.opt.observe)
            if i in answered:
                notifications += 1
                time.sleep(PROCESSING)
            else:
                answered.add(i)
                if len(answered) == count:
                    emit(observing=count, observe=observe)

    selector = selectors.DefaultSelector()
    selector.register(sock, selectors.EVENT_READ)
    for i in range(count):
        # One at a time, as the small buffer would drop a burst of answers; sent again if the
        # answer does not come.
        request = aiocoap.Message(code=Code.GET, observe=0, uri_path=("3303", str(i), "5700"))
        request.mtype, request.mid, request.token = CON, i, i.to_bytes(2, "big")
        while i not in answered:
            sock.send(request.encode())
            selector.select(1.0)
            drain()
    selector.register(sys.stdin, selectors.EVENT_READ)
    while True:
        for key, _ in selector.select():
            if key.fileobj is sock:
                drain()
                continue
            line = sys.stdin.readline()
            if not line:
                return
            drain()
            emit(latest=latest, notifications=notifications, observe=observe)


def emit(**fields: object) -> None:
    print(json.dumps(fields), flush=True)


if __name__ == "__main__":
    main()
