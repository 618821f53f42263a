"""moto's server, as `moto_server` runs it, with DynamoDB requests serialized.

Why: moto 5.2's TransactWriteItems deep-copies the tables it touches, unlocked, for rollback; a write to
the same table from another request thread meanwhile crashes it ("RuntimeError: dictionary changed size
during iteration" -> HTTP 500 with an HTML body). Real DynamoDB has no such race, so the emulator must
not invent one. SQS and the rest stay concurrent, so long polls do not block other calls.

Usage: python moto_server.py HOST PORT
"""

import sys
import threading

from werkzeug.serving import run_simple
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)

host, port = sys.argv[1], int(sys.argv[2])
app = DomainDispatcherApplication(create_backend_app)
dynamodb = threading.Lock()


def serialized(environ, start_response):
    # DynamoDB Streams too: a cancelled transaction swaps in a copy of the table with its stream, and
    # a GetRecords meanwhile would read the half-made copy.
    if environ.get("HTTP_X_AMZ_TARGET", "").startswith(("DynamoDB_", "DynamoDBStreams_")):
        with dynamodb:
            # Consume the response inside the lock: moto does its work while it is produced.
            return list(app(environ, start_response))
    return app(environ, start_response)


run_simple(host, port, serialized, threaded=True, request_handler=MotoRequestHandler)
