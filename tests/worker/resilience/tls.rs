//! TLS: `amqps://` and `rediss://` through TLS-terminating proxies with a
//! certificate from a CA generated here, verification on; a CA that does
//! not match keeps the worker from becoming ready.

use std::time::Duration;

use crate::support::tls::{Pki, TempFile, TlsProxy};
use crate::support::*;

/// Watches `/readyz` for 3 s: 503 all along, giving `reason`.
async fn assert_never_ready(worker: &Worker, reason: &str) -> String {
    eventually("the HTTP endpoint answers", || async {
        worker.get("/healthz").await.is_some()
    })
    .await;
    let mut body = String::new();
    for _ in 0..30 {
        let (status, text) = worker.get("/readyz").await.unwrap_or_default();
        assert_eq!(
            status,
            503,
            "ready with the wrong CA; logs:\n{}",
            worker.logs()
        );
        assert!(text.contains(reason), "{text}");
        body = text;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    body
}

#[tokio::test]
async fn the_worker_serves_through_tls_to_rabbitmq_and_redis_with_verification_on() {
    let env = TestEnv::new("tls").await;
    env.seed_sample().await;
    let pki = Pki::generate("lcm test CA", "localhost");
    let amqp = TlsProxy::start(&amqp_address(), &pki, None).await;
    let redis = TlsProxy::start(&redis_address(), &pki, None).await;
    let ca = TempFile::new("ca.pem", &pki.ca_pem);
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", &amqp.amqps_url()),
            ("LCM__REDIS__URL", &redis.rediss_url()),
            ("LCM__AMQP__TLS__CA_FILE", &ca.path()),
            ("LCM__REDIS__TLS__CA_FILE", &ca.path()),
        ])
        .await;
    let mut requester = env.requester("desk").await;
    let reply = requester.request(&sample_request("desk")).await;
    println!(
        "tls: reply {}, TLS handshakes: AMQP {}, Redis {}",
        reply.body["subtopic"],
        amqp.handshakes(),
        redis.handshakes()
    );
    assert_eq!(
        reply.body["subtopic"], "BusinessOutCome",
        "{:?}",
        reply.body
    );
    assert!(amqp.handshakes() >= 1 && redis.handshakes() >= 1);
    assert!(
        !worker.logs().contains("OFF"),
        "no insecure warning expected"
    );
}

#[tokio::test]
async fn a_broker_certificate_from_another_ca_keeps_the_worker_from_consuming() {
    let env = TestEnv::new("tls-bad-amqp").await;
    let server = Pki::generate("lcm test CA", "localhost");
    let other = Pki::generate("some other CA", "localhost");
    let amqp = TlsProxy::start(&amqp_address(), &server, None).await;
    let ca = TempFile::new("other-ca.pem", &other.ca_pem);
    let worker = env.spawn_worker(&[
        ("LCM__AMQP__URL", &amqp.amqps_url()),
        ("LCM__AMQP__TLS__CA_FILE", &ca.path()),
    ]);
    let body = assert_never_ready(&worker, "not consuming").await;
    let logs = worker.logs();
    let named = logs
        .lines()
        .find(|l| l.contains("certificate"))
        .unwrap_or("");
    println!("tls, wrong AMQP CA: /readyz {body:?}; log: {named}");
    assert!(body.contains("not consuming"), "{body}");
    assert!(
        logs.contains("UnknownIssuer") || logs.contains("certificate"),
        "the logs do not name the certificate error:\n{logs}"
    );
}

#[tokio::test]
async fn a_redis_certificate_from_another_ca_leaves_the_worker_consuming_but_not_ready() {
    let env = TestEnv::new("tls-bad-redis").await;
    let server = Pki::generate("lcm test CA", "localhost");
    let other = Pki::generate("some other CA", "localhost");
    let redis = TlsProxy::start(&redis_address(), &server, None).await;
    let ca = TempFile::new("other-ca.pem", &other.ca_pem);
    let worker = env.spawn_worker(&[
        ("LCM__REDIS__URL", &redis.rediss_url()),
        ("LCM__REDIS__TLS__CA_FILE", &ca.path()),
    ]);
    worker.wait_consuming().await;
    let body = assert_never_ready(&worker, "Redis not answering").await;
    let logs = worker.logs();
    let named = logs
        .lines()
        .find(|l| l.contains("certificate"))
        .unwrap_or("");
    println!("tls, wrong Redis CA: /readyz {body:?}; log: {named}");
    assert!(body.contains("Redis not answering"), "{body}");
    assert!(
        logs.contains("UnknownIssuer") || logs.contains("certificate"),
        "the logs do not name the certificate error:\n{logs}"
    );
    assert_eq!(redis.handshakes(), 0);
}

#[tokio::test]
async fn mutual_tls_passes_with_the_client_certificate_and_fails_without() {
    let env = TestEnv::new("mtls").await;
    env.seed_sample().await;
    let server = Pki::generate("lcm test CA", "localhost");
    let client = Pki::generate("lcm client CA", "lcm-worker");
    let amqp = TlsProxy::start(&amqp_address(), &server, Some(&client.ca_pem)).await;
    let redis = TlsProxy::start(&redis_address(), &server, Some(&client.ca_pem)).await;
    let ca = TempFile::new("ca.pem", &server.ca_pem);
    let cert = TempFile::new("client.pem", &client.cert_pem);
    let key = TempFile::new("client.key", &client.key_pem);
    let (amqp_url, redis_url, ca_path) = (amqp.amqps_url(), redis.rediss_url(), ca.path());
    let mut settings = vec![
        ("LCM__AMQP__URL", amqp_url.as_str()),
        ("LCM__REDIS__URL", redis_url.as_str()),
        ("LCM__AMQP__TLS__CA_FILE", ca_path.as_str()),
        ("LCM__REDIS__TLS__CA_FILE", ca_path.as_str()),
    ];

    let without = env.spawn_worker(&settings);
    let body = assert_never_ready(&without, "not consuming").await;
    println!("mutual tls, no client certificate: /readyz {body:?}");
    assert!(body.contains("not consuming"), "{body}");
    drop(without);

    let (cert_path, key_path) = (cert.path(), key.path());
    settings.extend([
        ("LCM__AMQP__TLS__CERT_FILE", cert_path.as_str()),
        ("LCM__AMQP__TLS__KEY_FILE", key_path.as_str()),
        ("LCM__REDIS__TLS__CERT_FILE", cert_path.as_str()),
        ("LCM__REDIS__TLS__KEY_FILE", key_path.as_str()),
    ]);
    let _worker = env.start_worker(&settings).await;
    let mut requester = env.requester("desk").await;
    requester.sample_is_answered().await;
}

#[tokio::test]
async fn skipping_verification_connects_to_an_unknown_ca_and_warns_loudly() {
    let env = TestEnv::new("tls-insecure").await;
    env.seed_sample().await;
    let server = Pki::generate("unknown CA", "localhost");
    let amqp = TlsProxy::start(&amqp_address(), &server, None).await;
    let redis = TlsProxy::start(&redis_address(), &server, None).await;
    let worker = env
        .start_worker(&[
            ("LCM__AMQP__URL", &amqp.amqps_url()),
            ("LCM__REDIS__URL", &redis.rediss_url()),
            ("LCM__AMQP__TLS__INSECURE_SKIP_VERIFY", "true"),
            ("LCM__REDIS__TLS__INSECURE_SKIP_VERIFY", "true"),
        ])
        .await;
    let logs = worker.logs();
    for system in ["AMQP", "Redis"] {
        let warning = format!("TLS certificate verification is OFF for {system}");
        assert!(
            logs.lines()
                .any(|l| l.contains("WARN") && l.contains(&warning)),
            "{logs}"
        );
    }
}
