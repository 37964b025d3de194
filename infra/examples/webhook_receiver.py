"""A Modelog webhook receiver, standard library only: verifies the Standard Webhooks signature and
timestamp, prints each event's CloudEvents JSON. WEBHOOK_SECRET=whsec_... python webhook_receiver.py 8080"""

import base64
import hashlib
import hmac
import http.server
import os
import sys
import time

KEY = base64.b64decode(os.environ["WEBHOOK_SECRET"].removeprefix("whsec_"))


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        msg_id, ts = self.headers.get("webhook-id", ""), self.headers.get("webhook-timestamp", "0")
        mac = hmac.new(KEY, f"{msg_id}.{ts}.".encode() + body, hashlib.sha256).digest()
        sent = [s.removeprefix("v1,") for s in self.headers.get("webhook-signature", "").split()]
        fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300  # refuse replays of old messages
        ok = fresh and any(hmac.compare_digest(base64.b64encode(mac).decode(), s) for s in sent)
        self.send_response(204 if ok else 401)  # any 2xx is success; others are retried
        self.end_headers()
        if ok:  # act on it here: e.g. call the GitHub API's repository_dispatch
            print(body.decode(), flush=True)


server = http.server.ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver)
print(f"listening on port {server.server_port}", flush=True)
server.serve_forever()
