"""``python -m bench.serve_bench --db PATH``: the app exactly as ``als-epro-server serve`` runs it
(same factory, the same garbage-collector settings, waitress with the same thread count and
options), plus ``POST /bench/bare``, which reads and parses the JSON body like the sync endpoint
and answers 200 without touching the database.

Prints ``serving on http://HOST:PORT`` when ready, like ``serve``. Used only by ``bench.throughput``.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    from flask import jsonify, request
    from waitress import create_server

    from server import create_app
    from server.auth import public
    from server.cli import build_parser, tune_gc

    serve_defaults = build_parser().parse_args(["serve"])
    p = argparse.ArgumentParser()
    p.add_argument("--db", required=True)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--threads", type=int, default=serve_defaults.threads)
    args = p.parse_args()

    app = create_app({"DB": args.db})
    tune_gc()                         # as serve does

    @app.post("/bench/bare")
    @public
    def bare():
        body = json.loads(request.get_data(cache=True).decode("utf-8"))
        return jsonify({"ok": True, "records": len(body.get("records", []))})

    server = create_server(app, host="127.0.0.1", port=args.port, threads=args.threads,
                           clear_untrusted_proxy_headers=True)
    print(f"serving on http://127.0.0.1:{server.effective_port} threads={args.threads}", flush=True)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
