"""The Python peer's cold start, measured by the same harness as ours (tools/coldstart): a Lambda custom
runtime loop around a pywa app with a boto3 DynamoDB client, as a team would write the webhook in
Python. Ready = the first GET /runtime/invocation/next, after the imports and clients are built.

It answers API Gateway (HTTP API v2) events: GET is the subscription handshake, POST the signed update.
The loop uses only the standard library (urllib), as the Lambda Runtime Interface Client would.
"""

import base64
import json
import logging
import os
import urllib.parse
import urllib.request

import boto3
from pywa import WhatsApp

API = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime"

logging.disable(logging.CRITICAL)
dynamodb = boto3.client("dynamodb", region_name=os.environ.get("AWS_REGION", "us-east-1"))
wa = WhatsApp(
    phone_id=os.environ.get("WAHOOK_PHONE_NUMBER_ID", "106540352242922"),
    token="bench-token",
    server=None,
    verify_token=os.environ["WAHOOK_VERIFY_TOKEN"],
    app_secret=os.environ["WAHOOK_APP_SECRET"],
    validate_updates=True,
    filter_updates=False,
)


@wa.on_message()
def on_message(_, msg):
    pass


def handle(event):
    method = event.get("requestContext", {}).get("http", {}).get("method", "POST")
    if method == "GET":
        q = event.get("queryStringParameters") or dict(
            urllib.parse.parse_qsl(event.get("rawQueryString") or "")
        )
        if q.get("hub.mode") != "subscribe":
            return 403, "Forbidden"
        body, status = wa.webhook_challenge_handler(q.get("hub.verify_token"), q.get("hub.challenge"))
        return status, body
    body = event.get("body") or ""
    body = base64.b64decode(body) if event.get("isBase64Encoded") else body.encode()
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    refused = wa.webhook_update_validator(body, headers.get("x-hub-signature-256"))
    if refused is not None:
        return refused[1], refused[0]
    text, status = wa.webhook_update_handler(body)
    return status, text


while True:
    with urllib.request.urlopen(API + "/invocation/next") as r:
        request_id = r.headers["Lambda-Runtime-Aws-Request-Id"]
        event = json.loads(r.read())
    status, text = handle(event)
    answer = json.dumps({"statusCode": status, "body": text, "headers": {"content-type": "text/plain"}})
    req = urllib.request.Request(
        API + f"/invocation/{request_id}/response", data=answer.encode(), method="POST"
    )
    urllib.request.urlopen(req).read()
