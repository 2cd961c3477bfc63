#!/usr/bin/env node
// Sends one GetBusinessOutcome to lcm-worker and prints the reply.
//
//   node requester.mjs --callid 12345 --account '5|3|1|0|0|44|1' [--source NAME] [--timeout 5] [--trace]
//
// Reads the same variables as the worker: LCM__AMQP__URL (default
// amqp://guest:guest@127.0.0.1:5672/%2f) and LCM__AMQP__REQUEST_EXCHANGE
// (default lcm.requests). Prints the reply as JSON on standard output.
// Exit status: 0 for BusinessOutCome, 1 for WS_Error, 2 for no reply in
// time or any failure (the reason on standard error).
//
// --trace starts a W3C trace: the request carries a `traceparent` header,
// and standard error gets `trace <trace id>` and the reply's `traceparent`,
// which continues that trace (docs/protocol.md section 11). Search your
// tracing backend for the trace id to find the worker's spans.
import { randomBytes, randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import amqp from 'amqplib';

const DIRECT_REPLY_TO = 'amq.rabbitmq.reply-to';

async function main() {
  const { values: args } = parseArgs({
    options: {
      callid: { type: 'string' },
      account: { type: 'string' },
      source: { type: 'string', default: 'node-requester' },
      timeout: { type: 'string', default: '5' },
      trace: { type: 'boolean', default: false },
    },
  });
  if (args.callid === undefined || args.account === undefined) {
    console.error('usage: requester.mjs --callid ID --account KEY [--source NAME] [--timeout SECONDS] [--trace]');
    return 2;
  }
  const timeoutMs = Number(args.timeout) * 1000;
  const url = process.env.LCM__AMQP__URL ?? 'amqp://guest:guest@127.0.0.1:5672/%2f';
  const exchange = process.env.LCM__AMQP__REQUEST_EXCHANGE ?? 'lcm.requests';
  const request = {
    channel: 'LCM',
    topic: 'WebService',
    subtopic: 'GetBusinessOutcome',
    source: args.source,
    data: { callid: args.callid, AccountNumber: args.account },
  };
  const correlationId = randomUUID();
  const headers = {};
  if (args.trace) {
    const traceId = randomBytes(16).toString('hex');
    // Sampled (flags 01), so that an exporting worker records its spans.
    headers.traceparent = `00-${traceId}-${randomBytes(8).toString('hex')}-01`;
    console.error(`trace ${traceId}`);
  }

  const connection = await amqp.connect(url);
  try {
    const channel = await connection.createChannel();
    const reply = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no reply within ${args.timeout} s`)), timeoutMs);
      // A missing exchange closes the channel; a lost connection errors.
      channel.on('error', reject);
      connection.on('error', reject);
      // A mandatory request that no queue takes comes back at once.
      channel.on('return', () => {
        clearTimeout(timer);
        reject(new Error(`no queue takes source \`${args.source}\` on exchange \`${exchange}\``));
      });
      // Direct Reply-to: consume the pseudo-queue (no-ack) before publishing.
      channel
        .consume(
          DIRECT_REPLY_TO,
          (message) => {
            if (message && message.properties.correlationId === correlationId) {
              clearTimeout(timer);
              resolve(message);
            }
          },
          { noAck: true },
        )
        .then(() =>
          channel.publish(exchange, args.source, Buffer.from(JSON.stringify(request)), {
            contentType: 'application/json',
            replyTo: DIRECT_REPLY_TO,
            correlationId,
            headers,
            mandatory: true,
          }),
        )
        .catch(reject);
    });
    const message = await reply;
    if (args.trace) {
      const traceparent = message.properties.headers?.traceparent;
      console.error(`reply traceparent ${Buffer.isBuffer(traceparent) ? traceparent.toString('utf8') : traceparent}`);
    }
    const body = JSON.parse(message.content.toString('utf8'));
    console.log(JSON.stringify(body, null, 2));
    return { BusinessOutCome: 0, WS_Error: 1 }[body?.subtopic] ?? 2;
  } finally {
    await connection.close().catch(() => {});
  }
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error) => {
    console.error(error.message);
    process.exitCode = 2;
  },
);
