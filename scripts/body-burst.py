#!/usr/bin/env python3
"""Measures the peak memory of `parmana serve` under a burst of large request bodies.

The figure of docs/server.md ("Limits", body bytes in flight): N connections each send a
`POST /v1/verify` body of about 3 MiB (`{"attestation":[0,0,...]}`, whose JSON tree is the
largest per byte) at once; the script counts the answers by status and prints the server's
peak resident set size (`VmHWM`).

Usage, from the repository root (Linux):
    cargo build --release -p parmana-cli
    scripts/body-burst.py [N] [PATH/TO/parmana]     # default 16, target/release/parmana

The server runs on 127.0.0.1 with the memory store and a test token, in the repository's
bundled TEST-ONLY deployment; nothing is written.
"""

import collections
import os
import socket
import subprocess
import sys
import threading

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    binary = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "target/release/parmana")
    server = subprocess.Popen(
        [binary, "serve", "--store", "memory", "--dev-token", "--listen", "127.0.0.1:0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        address, token = None, None
        for line in server.stdout:
            text = line.decode()
            if text.startswith("listening on http://"):
                address = text.split("http://", 1)[1].strip()
            elif text.startswith("token:"):
                token = text.split()[1]
                break
        host, port = address.rsplit(":", 1)
        size = 3 * 1024 * 1024
        body = b'{"attestation":[' + b"0," * ((size - 20) // 2) + b"0]}"
        head = (
            f"POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        statuses = collections.Counter()
        lock = threading.Lock()

        def one():
            status = "no answer"
            try:
                with socket.create_connection((host, int(port))) as stream:
                    stream.sendall(head + body)
                    answer = b""
                    while chunk := stream.recv(65536):
                        answer += chunk
                    status = answer.split(b"\r\n", 1)[0].decode()
            except OSError as error:
                # A shed request's connection is closed before its body is all sent.
                status = f"closed while sending ({error.__class__.__name__})"
            with lock:
                statuses[status] += 1

        threads = [threading.Thread(target=one) for _ in range(count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with open(f"/proc/{server.pid}/status") as status:
            peak = next(line for line in status if line.startswith("VmHWM")).split()[1]
        for status, n in sorted(statuses.items()):
            print(f"{n:4}  {status}")
        print(f"peak RSS: {int(peak) // 1024} MiB")
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
