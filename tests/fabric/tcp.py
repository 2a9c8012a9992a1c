"""A tiny TCP probe run inside a server's namespace (the machines have no netcat):

nsenter --net=<ns> python -m tests.fabric.tcp serve PORT
    listens on 0.0.0.0:PORT, prints `listening` once bound, and answers every
    connection with `isthmus-tcp` until it is terminated;
nsenter --net=<ns> python -m tests.fabric.tcp connect IP PORT TIMEOUT
    exits 0 when it connected and read that answer within TIMEOUT seconds, else 1.
"""

from __future__ import annotations

import socket
import sys

ANSWER = b"isthmus-tcp"


def serve(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("0.0.0.0", port))
        listener.listen(16)
        print("listening", flush=True)
        while True:
            conn, _ = listener.accept()
            with conn:
                try:
                    conn.sendall(ANSWER)
                except OSError:
                    pass


def connect(ip: str, port: int, timeout: float) -> bool:
    try:
        with socket.create_connection((ip, port), timeout=timeout) as conn:
            conn.settimeout(timeout)
            return conn.recv(len(ANSWER)) == ANSWER
    except OSError:  # refused, unreachable, dropped (timeout)
        return False


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(int(sys.argv[2]))
    else:
        sys.exit(0 if connect(sys.argv[2], int(sys.argv[3]), float(sys.argv[4])) else 1)
