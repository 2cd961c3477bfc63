//! The yardstick for `bench/compare.sh`: the fastest worker that keeps
//! lcm-worker's acknowledgement rule. It consumes the same queue with the
//! same prefetch and, for every request, publishes one fixed, valid
//! BusinessOutCome reply to `reply_to` with publisher confirms and
//! acknowledges after the confirm. No Redis, no parsing.
//!
//! With `LCM_ECHO_LOOKUP=N` set, each delivery first reads a call record
//! through the worker's own Redis store (`RedisStore`: its pool, the call
//! lookup's script by its hash, the reply read), as the worker does before
//! it answers; the answer is not used. The record is the one `lcm-worker
//! bench --calls N` sent the request about, found from the correlation id
//! without reading the body (`lcm_worker::cli::callid_of_request`, which
//! the default `bench` feature builds). That yardstick tells what
//! the worker costs beyond its Redis round trip (docs/performance.md,
//! "What the CPU target needs").
//!
//! Single-threaded runtime and one task per delivery, so that confirms
//! overlap: a slow yardstick would flatter every ratio.
//!
//! ```sh
//! cargo run --release --example echo   # reads the same configuration as lcm-worker
//! LCM_ECHO_LOOKUP=10000 cargo run --release --example echo
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use lcm_worker::amqp::{connect, topology};
use lcm_worker::cli::callid_of_request;
use lcm_worker::service::Store as _;
use lcm_worker::settings::Settings;
use lcm_worker::RedisStore;

const REPLY: &[u8] = br#"{"channel":"LCM","topic":"WebService","subtopic":"BusinessOutCome","message":{"callid":"12345","response":[{"OutComeID":"101","Description":"Payment Done","CampaignID":"1","LeadScore":"0","ParentID":null},{"OutComeID":"102","Description":"Payment Failure","CampaignID":"1","LeadScore":"0","ParentID":null}]}}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    let lookup = match std::env::var("LCM_ECHO_LOOKUP") {
        Ok(calls) => Some(Arc::new(Lookup {
            store: RedisStore::new(&settings.redis)?,
            calls: calls.parse()?,
            missed: AtomicBool::new(false),
        })),
        Err(_) => None,
    };
    let amqp = &settings.amqp;
    let connection = connect(&amqp.url, "lcm-echo", &amqp.tls).await?;
    let channel = connection.create_channel().await?;
    topology::declare(&channel, amqp).await?;
    channel
        .basic_qos(amqp.prefetch, BasicQosOptions::default())
        .await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut consumer = channel
        .basic_consume(
            amqp.request_queue.as_str().into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    eprintln!("echo: consuming {}", amqp.request_queue);
    while let Some(delivery) = consumer.next().await {
        let delivery = delivery?;
        let channel = channel.clone();
        let lookup = lookup.clone();
        tokio::spawn(async move {
            if let Some(lookup) = lookup {
                lookup
                    .read(delivery.properties.correlation_id().as_ref())
                    .await;
            }
            let Some(reply_to) = delivery.properties.reply_to().clone() else {
                let _ = delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await;
                return;
            };
            let mut properties =
                BasicProperties::default().with_content_type("application/json".into());
            if let Some(id) = delivery.properties.correlation_id() {
                properties = properties.with_correlation_id(id.clone());
            }
            let published = channel
                .basic_publish(
                    "".into(),
                    reply_to,
                    BasicPublishOptions::default(),
                    REPLY,
                    properties,
                )
                .await;
            if let Ok(confirm) = published {
                if confirm.await.is_ok_and(|c| c.is_ack()) {
                    let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                }
            }
        });
    }
    Ok(())
}

/// The call lookup of `LCM_ECHO_LOOKUP`.
struct Lookup {
    store: RedisStore,
    /// The bench's `--calls`: request `n` is about call `n % calls`.
    calls: u64,
    /// Whether a lookup has found no record (said once).
    missed: AtomicBool,
}

impl Lookup {
    /// Reads the record of the call the request with `correlation_id` asks
    /// about. A yardstick that read nothing would cost Redis and the client
    /// less than the worker's lookups: that is said once.
    async fn read(&self, correlation_id: Option<&lapin::types::ShortString>) {
        let id = correlation_id.map_or("", |id| id.as_str());
        let read = match callid_of_request(id, self.calls) {
            Some(callid) => matches!(self.store.call(&callid).await, Ok(Some(_))),
            None => false,
        };
        if !read && !self.missed.swap(true, Ordering::Relaxed) {
            eprintln!(
                "echo: no call record read for correlation id {id:?}: \
                 is LCM_ECHO_LOOKUP the bench's --calls?"
            );
        }
    }
}
