"""Real local HTTP receivers standing in for the far ends of notifications: a webhook
(a WeCom group robot, or a person's own URL) and the WeCom API (gettoken and
message/send). They count what arrives; they are test peers, not mocks of our code."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class Post:
    at: float
    path: str
    query: dict[str, str]
    notification_id: str
    body: dict[str, Any]

    @property
    def content(self) -> str:
        if "markdown" in self.body:
            return str(self.body["markdown"]["content"])
        return json.dumps(self.body, ensure_ascii=False)


@dataclass
class Receiver:
    """Records every POST and answers what ``answer`` says (status, JSON body).

    ``delivered`` counts, per notification id, the posts answered 200 with errcode 0:
    what a receiver that drops duplicates by the id header would have kept once.
    """

    answer: Callable[[Post, int], tuple[int, dict[str, Any]]] = lambda post, attempt: (
        200,
        {"errcode": 0, "errmsg": "ok"},
    )
    now: Callable[[], float] = time.monotonic  # what each POST is stamped with
    posts: list[Post] = field(default_factory=list)
    delivered: Counter[str] = field(default_factory=Counter)
    tokens_issued: int = 0
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def attempts(self, nid: str) -> list[float]:
        return [p.at for p in self.posts if p.notification_id == nid]

    def about(self, text: str) -> list[Post]:
        """Posts whose content mentions ``text`` (a project id, say)."""
        with self.lock:
            return [p for p in self.posts if text in p.content]


@contextmanager
def serving() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # WeCom gettoken
            with state.lock:
                state.tokens_issued += 1
                token = f"token-{state.tokens_issued}"
            self._reply(200, {"errcode": 0, "access_token": token, "expires_in": 7200})

        def do_POST(self) -> None:
            parsed = urlparse(self.path)
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            post = Post(
                state.now(),
                parsed.path,
                {k: v[0] for k, v in parse_qs(parsed.query).items()},
                self.headers.get("X-Yingke-Notification-Id", ""),
                body,
            )
            with state.lock:
                state.posts.append(post)
                status, answer = state.answer(post, len(state.attempts(post.notification_id)))
                if status == 200 and answer.get("errcode", 0) == 0:
                    state.delivered[post.notification_id] += 1
            self._reply(status, answer)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
