"""Real local receivers for alert tests: an SMTP server (aiosmtpd) and an HTTP webhook endpoint.

Both listen on 127.0.0.1 on a free port, run in a thread of the test process (so a Celery worker
process can reach them too) and record what they received.
"""

from __future__ import annotations

import email
import email.policy
import logging
import socket
import threading
import time
from dataclasses import dataclass
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from tests.workers import wait_for

logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd logs every SMTP command


def free_port() -> int:
    """A port nothing listens on (right now): also the address of an unreachable receiver."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def body(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


class _Collector:
    def __init__(self) -> None:
        self.messages: list[ReceivedMail] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's hook name)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append(ReceivedMail(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class SMTPServer:
    """`with SMTPServer() as smtp:` a real SMTP server; `smtp.messages` is what it accepted."""

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self._collector = _Collector()
        self._controller: Controller | None = None

    def __enter__(self) -> SMTPServer:
        # aiosmtpd checks readiness by connecting to its port, so it needs a real one, not 0.
        error: Exception | None = None
        for _ in range(5):  # another process may take the free port first: try another
            self.port = free_port()
            controller = Controller(self._collector, hostname=self.host, port=self.port)
            try:
                controller.start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                error = exc
            else:
                self._controller = controller
                return self
        raise RuntimeError("could not start the test SMTP server") from error

    def __exit__(self, *exc_info) -> None:
        if self._controller is not None:
            self._controller.stop()

    @property
    def messages(self) -> list[ReceivedMail]:
        with self._collector.lock:
            return list(self._collector.messages)

    def to(self, address: str) -> list[ReceivedMail]:
        return [mail for mail in self.messages if address in mail.rcpt_tos]

    def wait_for_messages(self, count: int, timeout: float = 10) -> list[ReceivedMail]:
        def enough_messages():
            return len(self.messages) >= count

        wait_for(enough_messages, timeout=timeout, interval=0.05)
        return self.messages


@dataclass(frozen=True)
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case (HTTP header names ignore case)
    body: bytes
    status: int  # what the receiver answered
    received_at: float  # time.monotonic()


class WebhookReceiver:
    """`with WebhookReceiver(fail_first=2, delay=0) as hook:` a real HTTP endpoint.

    Answers `fail_status` (500; a 3xx redirects to /moved) to the first `fail_first` requests
    and 200 after; sleeps `delay` seconds before each answer (a slow receiver).
    `hook.requests` is everything it got, in order, whatever the method.
    """

    def __init__(self, *, fail_first: int = 0, fail_status: int = 500, delay: float = 0.0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.delay = delay
        self._requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/hooks/parkwatch"

    @property
    def requests(self) -> list[ReceivedRequest]:
        with self._lock:
            return list(self._requests)

    def _handler(self):
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):  # noqa: N802 (http.server's hook name)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                received_at = time.monotonic()
                with receiver._lock:
                    failing = len(receiver._requests) < receiver.fail_first
                    status = receiver.fail_status if failing else 200
                    receiver._requests.append(
                        ReceivedRequest(
                            method=self.command,
                            path=self.path,
                            headers={k.lower(): v for k, v in self.headers.items()},
                            body=body,
                            status=status,
                            received_at=received_at,
                        )
                    )
                if receiver.delay:
                    time.sleep(receiver.delay)
                answer = b'{"ok": true}' if status == 200 else b'{"error": "try again"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                if 300 <= status < 400:
                    self.send_header("Location", "/moved")
                self.send_header("Content-Length", str(len(answer)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(answer)

            do_GET = do_POST  # noqa: N815 (a followed redirect arrives as a GET)

            def log_message(self, format, *args):  # noqa: A002 (the base class's signature)
                pass

        return Handler

    def __enter__(self) -> WebhookReceiver:
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
