"""A real HTTP receiver for webhook tests: records every POST, checks its signature, answers
with the status the test sets."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from svod_segmentation.domain.webhooks import verify


@dataclass
class Received:
    delivery_id: str
    idempotency_key: str
    timestamp: int
    signature_ok: bool
    body: dict


@dataclass
class Receiver:
    secret: str
    port: int
    status: int = 200
    received: list[Received] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/svod"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                timestamp = int(self.headers.get("Svod-Timestamp", "0"))
                item = Received(
                    delivery_id=self.headers.get("Svod-Delivery-Id", ""),
                    idempotency_key=self.headers.get("Idempotency-Key", ""),
                    timestamp=timestamp,
                    signature_ok=verify(
                        receiver.secret, timestamp, raw, self.headers.get("Svod-Signature", "")
                    ),
                    body=json.loads(raw),
                )
                with receiver._lock:
                    status = receiver.status
                    if 200 <= status < 300:
                        receiver.received.append(item)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def accepted(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def unique(self) -> dict[str, Received]:
        """Accepted deliveries by idempotency key (what an idempotent receiver keeps)."""
        return {r.idempotency_key: r for r in self.accepted()}

    def holding(self, binding_id: str) -> dict[str, str]:
        """Who the destination holds for a binding (customer -> label), replaying the kept
        deliveries in sequence order: a full sync replaces, changes add and remove."""
        held: dict[str, str] = {}
        mine = sorted(
            (r.body for r in self.unique().values() if r.body["binding_id"] == binding_id),
            key=lambda b: b["sequence"],
        )
        for body in mine:
            if body["type"] == "full_sync":
                if body["sync"]["page"] == 1:
                    held = {}
                held.update({m["customer_id"]: m["label"] for m in body["members"]})
            else:
                for change in body["changes"]:
                    if change["kind"] == "entered":
                        held[change["customer_id"]] = change["label"]
                    else:
                        held.pop(change["customer_id"], None)
        return held
