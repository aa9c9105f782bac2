#!/usr/bin/env python3
"""A forecasting model server for the predict subnet, behind `tmsubnet miner --forward-url`.

It answers the `forecast` synapse: a least-squares fit (numpy) of level, season and the
covariate's effect on the recent history, weighted towards recent points, plus the residual's
lag-1 autocorrelation carried into the horizon. Run it with Bootstrap/examples/model-server/run
(which installs numpy in a virtual environment of its own), then:

    tmsubnet miner --netuid 1 --wallet alice --hotkey m1 \
        --forward-url http://127.0.0.1:8000/forecast --synapse forecast

Every request is hostile input: sizes and values are checked before any arithmetic.
"""
import argparse
import http.server
import json
import math

import numpy as np

MAX_BODY = 1 << 20


def forecast(req):
    history = np.asarray(req["history"], dtype=float)
    covariate = np.asarray(req["covariate"], dtype=float)
    period, horizon = int(req["period"]), int(req["horizon"])
    n = len(history)
    if not (1 <= horizon <= 16 and 1 <= n <= 1024 and 2 <= period <= 256 and len(covariate) == n + horizon):
        raise ValueError("bad shape")
    if not (np.all(np.isfinite(history)) and np.all(np.isfinite(covariate))):
        raise ValueError("values must be finite")
    window = min(n, max(3 * period, 24))
    t = np.arange(n + horizon, dtype=float)
    features = np.column_stack([np.ones_like(t), np.sin(2 * math.pi * t / period), np.cos(2 * math.pi * t / period), covariate])
    rows = slice(n - window, n)
    weights = 0.5 ** ((n - 1 - np.arange(n - window, n)) / max(period, 8))
    sw = np.sqrt(weights)[:, None]
    beta, *_ = np.linalg.lstsq(features[rows] * sw, history[rows] * sw[:, 0], rcond=None)
    residuals = history[rows] - features[rows] @ beta
    den = float(residuals[:-1] @ residuals[:-1])
    rho = max(-0.99, min(0.99, float(residuals[1:] @ residuals[:-1]) / den)) if den > 0 else 0.0
    r = residuals[-1]
    out = []
    for k in range(horizon):
        r *= rho
        out.append(float(features[n + k] @ beta + r))
    return {"prediction": out}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            return self.answer(413, {"error": "body too large or without a length"})
        try:
            req = json.loads(self.rfile.read(int(length)))
            if self.path.rstrip("/").split("/")[-1] != "forecast":
                return self.answer(404, {"error": "unknown synapse"})
            return self.answer(200, forecast(req))
        except (ValueError, KeyError, TypeError) as e:
            return self.answer(400, {"error": str(e)})


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    a = p.parse_args()
    server = http.server.ThreadingHTTPServer((a.host, a.port), Handler)
    print(f"model server on http://{a.host}:{server.server_address[1]}/forecast", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
