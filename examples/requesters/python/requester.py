#!/usr/bin/env python3
"""Sends one GetBusinessOutcome to lcm-worker and prints the reply.

    python requester.py --callid 12345 --account '5|3|1|0|0|44|1' [--source NAME] [--timeout 5] [--trace]

Reads the same variables as the worker: LCM__AMQP__URL (default
amqp://guest:guest@127.0.0.1:5672/%2f) and LCM__AMQP__REQUEST_EXCHANGE
(default lcm.requests). Prints the reply as JSON on standard output.
Exit status: 0 for BusinessOutCome, 1 for WS_Error, 2 for no reply in
time or any failure (the reason on standard error).

--trace starts a W3C trace: the request carries a `traceparent` header, and
standard error gets `trace <trace id>` and the reply's `traceparent`, which
continues that trace (docs/protocol.md section 11). Search your tracing
backend for the trace id to find the worker's spans.
"""
import argparse
import json
import os
import secrets
import sys
import time
import uuid

import pika

DIRECT_REPLY_TO = "amq.rabbitmq.reply-to"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--callid", required=True)
    parser.add_argument("--account", required=True)
    parser.add_argument("--source", default="python-requester", help="routing key and body source")
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the reply")
    parser.add_argument("--trace", action="store_true", help="start a trace and print its id")
    args = parser.parse_args()
    url = os.environ.get("LCM__AMQP__URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    exchange = os.environ.get("LCM__AMQP__REQUEST_EXCHANGE", "lcm.requests")

    request = {
        "channel": "LCM",
        "topic": "WebService",
        "subtopic": "GetBusinessOutcome",
        "source": args.source,
        "data": {"callid": args.callid, "AccountNumber": args.account},
    }
    correlation_id = str(uuid.uuid4())
    headers = {}
    if args.trace:
        trace_id = secrets.token_hex(16)
        # Sampled (flags 01), so that an exporting worker records its spans.
        headers["traceparent"] = f"00-{trace_id}-{secrets.token_hex(8)}-01"
        print(f"trace {trace_id}", file=sys.stderr)
    replies = []

    def on_reply(_channel, _method, properties, body):
        if properties.correlation_id == correlation_id:
            replies.append((body, (properties.headers or {}).get("traceparent")))

    try:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        channel = connection.channel()
        # Direct Reply-to: consume the pseudo-queue (no-ack) before publishing.
        channel.basic_consume(DIRECT_REPLY_TO, on_reply, auto_ack=True)
        # Confirms make a mandatory publish that no queue takes raise
        # UnroutableError instead of waiting out the time-out.
        channel.confirm_delivery()
        channel.basic_publish(
            exchange,
            args.source,
            json.dumps(request).encode(),
            pika.BasicProperties(
                content_type="application/json",
                reply_to=DIRECT_REPLY_TO,
                correlation_id=correlation_id,
                headers=headers or None,
            ),
            mandatory=True,
        )
        deadline = time.monotonic() + args.timeout
        while not replies and time.monotonic() < deadline:
            connection.process_data_events(time_limit=deadline - time.monotonic())
        connection.close()
    except pika.exceptions.UnroutableError:
        print(f"no queue takes source `{args.source}` on exchange `{exchange}`", file=sys.stderr)
        return 2
    except pika.exceptions.AMQPError as error:
        print(f"RabbitMQ: {error!r}", file=sys.stderr)
        return 2
    if not replies:
        print(f"no reply within {args.timeout:g} s", file=sys.stderr)
        return 2
    body, reply_traceparent = replies[0]
    if args.trace:
        if isinstance(reply_traceparent, bytes):
            reply_traceparent = reply_traceparent.decode(errors="replace")
        print(f"reply traceparent {reply_traceparent}", file=sys.stderr)
    try:
        reply = json.loads(body)
    except ValueError:
        print("the reply is not JSON", file=sys.stderr)
        return 2
    print(json.dumps(reply, indent=2))
    subtopic = reply.get("subtopic") if isinstance(reply, dict) else None
    return {"BusinessOutCome": 0, "WS_Error": 1}.get(subtopic, 2)


if __name__ == "__main__":
    sys.exit(main())
