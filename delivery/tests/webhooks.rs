//! Standard Webhooks signatures against the shared test vectors, and the
//! verifying receiver over real HTTP: it accepts a good message and rejects a
//! tampered body, a wrong secret and a timestamp outside the tolerance.

#![allow(clippy::unwrap_used)] // A test that cannot unwrap has failed.

use std::path::Path;

use delivery::receiver;
use delivery::webhook::{Secret, WebhookError};
use serde_json::Value;
use tokio::sync::mpsc;

fn vectors() -> Value {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/data/webhooks/vectors.json");
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[test]
fn signature_test_vectors_pass() {
    let v = vectors();
    let valid = v["valid"].as_array().unwrap();
    assert!(valid.len() >= 3);
    for case in valid {
        let secret = Secret::parse(case["secret"].as_str().unwrap()).unwrap();
        let id = case["id"].as_str().unwrap();
        let ts = case["timestamp"].as_i64().unwrap();
        let body = case["body"].as_str().unwrap().as_bytes();
        let expected = case["signature"].as_str().unwrap();
        assert_eq!(secret.sign(id, ts, body), expected, "vector {id}");
        secret.verify_signature(id, ts, body, expected).unwrap();
        // With the receiver's clock at the vector's time, the full check passes too.
        secret
            .verify(
                Some(id),
                Some(&ts.to_string()),
                Some(expected),
                body,
                ts,
                300,
            )
            .unwrap();
        // The secret round-trips through its text form.
        assert_eq!(secret.to_whsec(), case["secret"].as_str().unwrap());
    }
    for case in v["invalid"].as_array().unwrap() {
        let secret = Secret::parse(case["secret"].as_str().unwrap()).unwrap();
        let r = secret.verify_signature(
            case["id"].as_str().unwrap(),
            case["timestamp"].as_i64().unwrap(),
            case["body"].as_str().unwrap().as_bytes(),
            case["signature"].as_str().unwrap(),
        );
        assert_eq!(
            r,
            Err(WebhookError::NoMatchingSignature),
            "{}",
            case["expect"]
        );
    }
}

#[test]
fn one_valid_signature_among_several_is_enough() {
    let s = Secret::parse("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
    let header = "v1,AAAA v1a,whatever v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
    s.verify_signature(
        "msg_p5jXN8AQM9LWM0D4loKWxJek",
        1614265330,
        b"{\"test\": 2432232314}",
        header,
    )
    .unwrap();
    assert!(Secret::parse("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
    assert!(Secret::parse("whsec_!!!").is_err());
}

struct Server {
    url: String,
    accepted: mpsc::Receiver<receiver::Received>,
    rejected: mpsc::Receiver<receiver::Rejected>,
}

async fn start(secret: &Secret) -> Server {
    let (atx, accepted) = mpsc::channel(16);
    let (rtx, rejected) = mpsc::channel(16);
    let app = receiver::router(secret.clone(), 300, atx, rtx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    Server {
        url,
        accepted,
        rejected,
    }
}

async fn post(url: &str, id: &str, ts: i64, sig: &str, body: &str) -> u16 {
    reqwest::Client::new()
        .post(url)
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body.to_string())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn receiver_accepts_valid_and_rejects_tampered_wrong_secret_and_stale() {
    let secret = Secret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let mut srv = start(&secret).await;
    let now = jiff::Timestamp::now().as_second();
    let body = r#"{"type":"alert.opened","data":{"id":"a1"}}"#;

    // Valid.
    let sig = secret.sign("alrt_1", now, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_1", now, &sig, body).await, 204);
    let got = srv.accepted.recv().await.unwrap();
    assert_eq!(
        (got.webhook_id.as_str(), got.body.as_str()),
        ("alrt_1", body)
    );

    // Tampered body.
    let tampered = body.replace("a1", "a2");
    assert_eq!(post(&srv.url, "alrt_1", now, &sig, &tampered).await, 401);
    assert!(
        srv.rejected
            .recv()
            .await
            .unwrap()
            .reason
            .contains("no v1 signature")
    );

    // Wrong secret.
    let other = Secret::parse("whsec_ZnVzaW9uLWNlbnRlci10ZXN0LXNlY3JldC0wMDAx").unwrap();
    let sig2 = other.sign("alrt_2", now, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_2", now, &sig2, body).await, 401);
    assert!(
        srv.rejected
            .recv()
            .await
            .unwrap()
            .reason
            .contains("no v1 signature")
    );

    // Correctly signed, but the timestamp is 10 minutes old (a replayed capture) or in the future.
    for ts in [now - 600, now + 600] {
        let sig3 = secret.sign("alrt_3", ts, body.as_bytes());
        assert_eq!(post(&srv.url, "alrt_3", ts, &sig3, body).await, 401);
        assert!(
            srv.rejected
                .recv()
                .await
                .unwrap()
                .reason
                .contains("tolerance")
        );
    }

    // Nothing invalid got through.
    assert!(srv.accepted.try_recv().is_err());
}

#[test]
fn a_timestamp_at_the_ends_of_i64_is_outside_the_tolerance() {
    let secret = Secret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let body = b"{}";
    for ts in [i64::MIN, i64::MIN + 1, i64::MAX] {
        let sig = secret.sign("m", ts, body);
        let r = secret.verify(
            Some("m"),
            Some(&ts.to_string()),
            Some(&sig),
            body,
            1_790_000_000,
            300,
        );
        assert!(
            matches!(r, Err(WebhookError::TimestampOutsideTolerance { .. })),
            "{ts}: {r:?}"
        );
    }
}

#[tokio::test]
async fn receiver_rejects_a_signed_message_stamped_i64_min() {
    let secret = Secret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let mut srv = start(&secret).await;
    let body = r#"{"type":"alert.opened","data":{"id":"a1"}}"#;
    let ts = i64::MIN;
    let sig = secret.sign("alrt_min", ts, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_min", ts, &sig, body).await, 401);
    let rejected = srv.rejected.recv().await.unwrap();
    assert!(rejected.reason.contains("tolerance"), "{}", rejected.reason);
    assert!(srv.accepted.try_recv().is_err());
}

#[tokio::test]
async fn receiver_acknowledges_a_replayed_message_but_passes_it_on_once() {
    let secret = Secret::parse("whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap();
    let mut srv = start(&secret).await;
    let now = jiff::Timestamp::now().as_second();
    let body = r#"{"type":"alert.opened","data":{"id":"a1"}}"#;
    let sig = secret.sign("alrt_1", now, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_1", now, &sig, body).await, 204);
    // The same capture replayed, and the sender's retry (same id, new timestamp and
    // signature, as after a lost acknowledgement): acknowledged, not passed on.
    assert_eq!(post(&srv.url, "alrt_1", now, &sig, body).await, 204);
    let later = now + 1;
    let sig2 = secret.sign("alrt_1", later, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_1", later, &sig2, body).await, 204);
    // A different message still goes through; it is the next one passed on.
    let sig3 = secret.sign("alrt_2", now, body.as_bytes());
    assert_eq!(post(&srv.url, "alrt_2", now, &sig3, body).await, 204);
    assert_eq!(srv.accepted.recv().await.unwrap().webhook_id, "alrt_1");
    assert_eq!(srv.accepted.recv().await.unwrap().webhook_id, "alrt_2");
    assert!(srv.accepted.try_recv().is_err());
}
