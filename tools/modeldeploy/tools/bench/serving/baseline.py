"""The naive baseline: a transformers pipeline behind a one-request-at-a-time HTTP server.

It answers the same v1 route and body as the predictor so the load generator is
identical; it has no batching, no async and pads nothing away it would not anyway.
"""

from __future__ import annotations

import argparse
import json
from http.server import BaseHTTPRequestHandler, HTTPServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-dir", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    from transformers import pipeline

    classify = pipeline("text-classification", model=args.model_dir, tokenizer=args.model_dir)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # readiness
            self._reply(200, {"ready": True})

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["content-length"])))
            out = classify(body["instances"], truncation=True)
            self._reply(200, {"predictions": out})

        def _reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    class Server(HTTPServer):
        # Still one request at a time; a deep accept queue only keeps 64 waiting clients
        # from being reset by a full backlog (the default is 5).
        request_queue_size = 256

    Server(("127.0.0.1", args.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
