//! The yardstick for `bench/compare.sh`: the fastest worker that keeps
//! lcm-worker's acknowledgement rule. It consumes the same queue with the
//! same prefetch and, for every request, publishes one fixed, valid
//! BusinessOutCome reply to `reply_to` with publisher confirms and
//! acknowledges after the confirm. No Redis, no parsing.
//!
//! Single-threaded runtime and one task per delivery, so that confirms
//! overlap: a slow yardstick would flatter every ratio.
//!
//! ```sh
//! cargo run --release --example echo   # reads the same configuration as lcm-worker
//! ```

use futures_util::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, BasicRejectOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use lcm_worker::amqp::{connect, topology};
use lcm_worker::settings::Settings;

const REPLY: &[u8] = br#"{"channel":"LCM","topic":"WebService","subtopic":"BusinessOutCome","message":{"callid":"12345","response":[{"OutComeID":"101","Description":"Payment Done","CampaignID":"1","LeadScore":"0","ParentID":null},{"OutComeID":"102","Description":"Payment Failure","CampaignID":"1","LeadScore":"0","ParentID":null}]}}"#;

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
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
        tokio::spawn(async move {
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
