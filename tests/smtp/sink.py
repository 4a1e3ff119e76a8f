#!/usr/bin/python3
"""A real SMTP server for the email tests (aiosmtpd): accepts every message and writes it,
as received, to DIR/<n>.eml. Prints `listening on HOST:PORT` once it accepts connections and
runs until it is terminated or its stdin closes.

Usage: sink.py DIR [--auth USER:PASSWORD]   (with --auth, AUTH PLAIN/LOGIN is required)
"""
import os
import socket
import sys

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Save:
    def __init__(self, directory):
        self.directory = directory
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        path = os.path.join(self.directory, f"{self.count:04d}.eml")
        with open(path + ".tmp", "wb") as f:
            f.write(f"X-Envelope-To: {', '.join(envelope.rcpt_tos)}\r\n".encode())
            f.write(envelope.original_content or envelope.content)
        os.rename(path + ".tmp", path)
        return "250 OK"


def authenticator(expected):
    user, password = expected.split(":", 1)

    def check(server, session, envelope, mechanism, auth_data):
        ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == user and auth_data.password.decode() == password
        return AuthResult(success=ok)

    return check


def main():
    directory = sys.argv[1]
    os.makedirs(directory, exist_ok=True)
    kwargs = {}
    if "--auth" in sys.argv:
        kwargs = dict(
            authenticator=authenticator(sys.argv[sys.argv.index("--auth") + 1]),
            auth_required=True,
            auth_require_tls=False,
        )
    # A free port (aiosmtpd's controller checks its server by connecting to the port it was given).
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    controller = Controller(Save(directory), hostname="127.0.0.1", port=port, **kwargs)
    controller.start()
    print(f"listening on 127.0.0.1:{port}", flush=True)
    try:
        sys.stdin.read()
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
