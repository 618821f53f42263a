"""pywa's webhook work over the same payload files as our criterion bench (shared/benches/webhook_core.rs):
verify the X-Hub-Signature-256, parse the body and dispatch it to a message and a status handler, as a
pywa app behind any server does (webhook_update_validator, then webhook_update_handler).

Prints one JSON object: {payload name: {"us": median microseconds per delivery, "handled": items the
handlers saw per delivery}}. pywa builds and dispatches only the first item of a change; "handled"
says so, so the table never compares unlike work silently.

    python pywa_core.py --seconds 3 --out pywa.json text_625B=path statuses_1000=path
"""

import argparse
import hashlib
import hmac
import json
import logging
import statistics
import time

from pywa import WhatsApp

SECRET = "bench-app-secret"


def client(seen):
    wa = WhatsApp(
        phone_id="106540352242922",
        token="bench-token",
        server=None,
        verify_token="bench-verify-token",
        app_secret=SECRET,
        validate_updates=True,
        # Every iteration delivers the same bytes: with pywa's default the repeats would be skipped as
        # duplicates, which is not the work a fresh delivery costs.
        skip_duplicate_updates=False,
        filter_updates=False,
    )

    @wa.on_message()
    def on_message(_, msg):
        seen.append(msg.id)

    @wa.on_message_status()
    def on_status(_, status):
        seen.append(status.id)

    return wa


def deliver(wa, body, signature):
    refused = wa.webhook_update_validator(body, signature)
    if refused is not None:
        raise SystemExit(f"pywa refused the signature: {refused}")
    answer = wa.webhook_update_handler(body)
    if answer[1] != 200:
        raise SystemExit(f"pywa answered {answer}")


def measure(wa, seen, body, seconds):
    signature = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    seen.clear()
    deliver(wa, body, signature)
    handled = len(seen)
    # Calibrate a batch to about 50 ms, then take the median of the batches' means.
    n, t = 1, 0.0
    while t < 0.05:
        n *= 2
        start = time.perf_counter()
        for _ in range(n):
            deliver(wa, body, signature)
        t = time.perf_counter() - start
    batches = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline or len(batches) < 3:
        seen.clear()
        start = time.perf_counter()
        for _ in range(n):
            deliver(wa, body, signature)
        batches.append((time.perf_counter() - start) / n)
    return {"us": statistics.median(batches) * 1e6, "handled": handled, "batches": len(batches)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=3.0, help="measuring time per payload")
    ap.add_argument("--out", required=True, help="where to write the JSON results")
    ap.add_argument("payloads", nargs="+", metavar="NAME=FILE")
    args = ap.parse_args()
    # pywa logs each update at INFO; our benchmark measures with logging off too.
    logging.disable(logging.CRITICAL)
    seen = []
    wa = client(seen)
    import sys

    import pywa

    results = {"_meta": {"python": sys.version.split()[0], "pywa": pywa.__version__}}
    for spec in args.payloads:
        name, path = spec.split("=", 1)
        with open(path, "rb") as f:
            body = f.read()
        results[name] = measure(wa, seen, body, args.seconds)
    with open(args.out, "w") as f:
        json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
