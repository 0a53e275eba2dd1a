#!/usr/bin/env python3
"""A real HTTP server speaking the OpenAI chat-completions protocol, for the http judge's tests.

Usage: fake_openai_server.py STATE_DIR   (writes STATE_DIR/port and STATE_DIR/pid, serves until killed)

Each request's behaviour is chosen by a marker in the user message, "[[mode ARG]]":
  p1 P           top_logprobs with P("1") = P, P("0") = 1 - P
  score S        top_logprobs: "S" 0.7, "S+10" 0.3 (clipped to 100)
  fail500 N      HTTP 500 for the first N requests with this message, then like "score 50"
  r429 N         HTTP 429 (Retry-After: 0) for the first N, then "score 50"
  slow SECONDS   the first request sleeps that long before answering, later ones answer at once
  malformed N    a body that is not JSON for the first N, then "score 50" (N = 99: always)
  nochoices      {"choices": []}
  text T         no logprobs, message.content = T
  refuse         top_logprobs on words only ("I", "Sorry")
  hold SECONDS   sleeps, then "score 50" (to observe concurrency)
Requests without "Authorization: Bearer <key>" get 401 when the env var FAKE_OPENAI_KEY is set.
GET /stats returns {"requests": n, "max_in_flight": n, "auth_seen": [...]}.
"""
import json
import math
import os
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOCK = threading.Lock()
COUNTS = {}
STATS = {"requests": 0, "in_flight": 0, "max_in_flight": 0, "auth_seen": []}
KEY = os.environ.get("FAKE_OPENAI_KEY", "")


def logprobs_body(dist):
    top = [{"token": t, "logprob": math.log(p) if p > 0 else -1e9} for t, p in dist.items()]
    first = max(dist, key=dist.get)
    return {
        "id": "fake",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": first},
                     "logprobs": {"content": [{"token": first, "logprob": math.log(dist[first]), "top_logprobs": top}]},
                     "finish_reason": "length"}],
    }


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send(self, code, body, headers=None):
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        with LOCK:
            self.send(200, dict(STATS))

    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(n)
        with LOCK:
            STATS["requests"] += 1
            STATS["in_flight"] += 1
            STATS["max_in_flight"] = max(STATS["max_in_flight"], STATS["in_flight"])
            STATS["auth_seen"].append(self.headers.get("Authorization", ""))
        try:
            self.handle_chat(raw)
        finally:
            with LOCK:
                STATS["in_flight"] -= 1

    def handle_chat(self, raw):
        if not self.path.endswith("/chat/completions"):
            return self.send(404, {"error": "no such route " + self.path})
        if KEY and self.headers.get("Authorization", "") != "Bearer " + KEY:
            return self.send(401, {"error": {"message": "invalid api key"}})
        req = json.loads(raw)
        content = req["messages"][-1]["content"]
        m = re.search(r"\[\[(\w+)\s*([^\]]*)\]\]", content)
        mode, arg = (m.group(1), m.group(2).strip()) if m else ("score", "50")
        with LOCK:
            COUNTS[content] = COUNTS.get(content, 0) + 1
            seen = COUNTS[content]
        if mode == "p1":
            p = float(arg)
            return self.send(200, logprobs_body({"0": 1 - p, "1": p}))
        if mode == "score":
            s = int(arg)
            return self.send(200, logprobs_body({str(s): 0.7, str(min(100, s + 10)): 0.3}))
        if mode == "fail500":
            if seen <= int(arg):
                return self.send(500, {"error": "overloaded"})
            return self.send(200, logprobs_body({"50": 1.0}))
        if mode == "r429":
            if seen <= int(arg):
                return self.send(429, {"error": "rate limited"}, {"Retry-After": "0"})
            return self.send(200, logprobs_body({"50": 1.0}))
        if mode == "slow":
            if seen == 1:
                time.sleep(float(arg))
            return self.send(200, logprobs_body({"50": 1.0}))
        if mode == "malformed":
            if seen <= int(arg):
                return self.send(200, b'{"choices": [{"message": ')
            return self.send(200, logprobs_body({"50": 1.0}))
        if mode == "nochoices":
            return self.send(200, {"choices": []})
        if mode == "text":
            return self.send(200, {"choices": [{"index": 0, "message": {"role": "assistant", "content": arg}}]})
        if mode == "refuse":
            return self.send(200, logprobs_body({"I": 0.6, "Sorry": 0.4}))
        if mode == "hold":
            time.sleep(float(arg))
            return self.send(200, logprobs_body({"50": 1.0}))
        return self.send(400, {"error": "unknown mode " + mode})


def main():
    state = sys.argv[1]
    os.makedirs(state, exist_ok=True)
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    with open(os.path.join(state, "pid"), "w") as f:
        f.write(str(os.getpid()))
    tmp = os.path.join(state, "port.tmp")
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, os.path.join(state, "port"))
    srv.serve_forever()


if __name__ == "__main__":
    main()
