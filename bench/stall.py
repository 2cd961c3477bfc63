#!/usr/bin/env python3
"""Publishes one request whose reply the broker refuses (bench/stall.sh).

    stall.py QUEUE EXCHANGE ROUTING_KEY

Declares QUEUE with x-max-length 0 and x-overflow reject-publish, so that
RabbitMQ nacks every reply published to it, then publishes one
GetBusinessOutcome request to EXCHANGE with reply_to = QUEUE. The worker
republishes the refused reply until limits.request_deadline_ms, and holds
the delivery unsettled all that time. Connects with LCM_STALL_URL
(default amqp://guest:guest@127.0.0.1:5672/%2f). Needs pika.
"""

import json
import os
import sys

import pika


def main(queue, exchange, routing_key):
    url = os.environ.get("LCM_STALL_URL", "amqp://guest:guest@127.0.0.1:5672/%2f")
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.queue_declare(queue, auto_delete=False,
                          arguments={"x-max-length": 0, "x-overflow": "reject-publish"})
    body = {"channel": "LCM", "topic": "WebService", "subtopic": "GetBusinessOutcome",
            "source": "lcm-stall", "data": {"callid": "stall", "AccountNumber": "1"}}
    channel.basic_publish(exchange, routing_key, json.dumps(body).encode(),
                          pika.BasicProperties(reply_to=queue, correlation_id="stall",
                                               content_type="application/json"))
    connection.close()


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    main(*sys.argv[1:])
