//! Sending a file from S3: the sender uploads it to Meta (the simulator) streamed from moto's S3, sends
//! it by media id, reuses the id for the same object version, and refuses, with the reason and
//! without a call, what Meta would refuse.

use serde_json::json;
use wahook::domain::ledger::SendState;
use wahook_tests::sdk_config;
use wahook_tests::sender::World;

const ANA: &str = "+5215512345678";

fn receipt() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 241) as u8).collect()
}

async fn bucket(name: &str) -> (aws_sdk_s3::Client, String) {
    let s3 = wahook::aws::s3_client(&sdk_config().await);
    let bucket = wahook_tests::unique_prefix(name)
        .to_lowercase()
        .replace('_', "-");
    s3.create_bucket().bucket(&bucket).send().await.unwrap();
    (s3, bucket)
}

async fn put(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, bytes: Vec<u8>, mime: Option<&str>) {
    s3.put_object()
        .bucket(bucket)
        .key(key)
        .set_content_type(mime.map(str::to_owned))
        .body(bytes.into())
        .send()
        .await
        .unwrap();
}

fn media_send(key: &str, kind: &str, object: serde_json::Value) -> String {
    let mut v = json!({"v": 1, "idempotency_key": key, "to": ANA});
    v[kind] = object;
    v.to_string()
}

#[tokio::test]
async fn a_file_from_s3_is_uploaded_once_and_sent_by_its_media_id() {
    let w = World::new("media-out").await;
    let (s3, bucket) = bucket("media-out").await;
    put(
        &s3,
        &bucket,
        "outbound/receipts/r-17.jpg",
        receipt(),
        Some("image/jpeg"),
    )
    .await;
    w.user_writes(ANA, "¿Me mandas el recibo?", false).await;
    let uri = format!("s3://{bucket}/outbound/receipts/r-17.jpg");
    for key in ["receipt-17-a", "receipt-17-b"] {
        w.enqueue(&media_send(
            key,
            "image",
            json!({"s3": uri, "caption": "Tu recibo"}),
        ))
        .await;
        w.run().await;
        assert_eq!(w.ledger(key).await.unwrap().state, SendState::Sent, "{key}");
    }
    let uploads = w.sim.uploads();
    assert_eq!(uploads.len(), 1, "the same object version is uploaded once");
    assert_eq!(uploads[0].bytes, receipt());
    assert_eq!(uploads[0].mime_type, "image/jpeg");
    assert_eq!(uploads[0].filename.as_deref(), Some("r-17.jpg"));
    let sent = w.sent();
    assert_eq!(sent.len(), 2);
    for s in &sent {
        assert_eq!(s["type"], "image");
        assert_eq!(
            s["image"],
            json!({"id": uploads[0].id, "caption": "Tu recibo"})
        );
    }

    // A new version of the object is a new upload.
    put(
        &s3,
        &bucket,
        "outbound/receipts/r-17.jpg",
        vec![1, 2, 3],
        Some("image/jpeg"),
    )
    .await;
    w.enqueue(&media_send("receipt-17-c", "image", json!({"s3": uri})))
        .await;
    w.run().await;
    assert_eq!(w.sim.uploads().len(), 2);
    assert_eq!(w.sim.uploads()[1].bytes, vec![1, 2, 3]);
}

#[tokio::test]
async fn a_file_goes_only_inside_the_window_or_as_its_fallback_template() {
    let w = World::new("media-out-window").await;
    let (s3, bucket) = bucket("media-out-window").await;
    put(&s3, &bucket, "outbound/inv-9.pdf", receipt(), None).await;
    let doc =
        json!({"s3": format!("s3://{bucket}/outbound/inv-9.pdf"), "filename": "factura-9.pdf"});
    w.enqueue(&media_send("inv-9-closed", "document", doc.clone()))
        .await;
    w.run().await;
    assert_eq!(
        w.ledger("inv-9-closed").await.unwrap().state,
        SendState::WindowClosed
    );
    assert!(
        w.sim.uploads().is_empty(),
        "no upload for a file that cannot be sent"
    );

    w.user_writes(ANA, "Hola", false).await;
    w.enqueue(&media_send("inv-9-open", "document", doc)).await;
    w.run().await;
    assert_eq!(w.ledger("inv-9-open").await.unwrap().state, SendState::Sent);
    let uploads = w.sim.uploads();
    // No Content-Type on the object: the name says application/pdf.
    assert_eq!(uploads[0].mime_type, "application/pdf");
    assert_eq!(uploads[0].filename.as_deref(), Some("factura-9.pdf"));
    assert_eq!(w.sent()[0]["document"]["filename"], "factura-9.pdf");
}

#[tokio::test]
async fn a_missing_or_oversized_file_is_refused_with_the_reason_and_no_message_call() {
    let w = World::new("media-out-bad").await;
    let (s3, bucket) = bucket("media-out-bad").await;
    w.user_writes(ANA, "Hola", false).await;
    // A sticker over Meta's 500 KB.
    put(
        &s3,
        &bucket,
        "outbound/big.webp",
        vec![0; 600 * 1024],
        Some("image/webp"),
    )
    .await;
    w.enqueue(&media_send(
        "missing",
        "image",
        json!({"s3": format!("s3://{bucket}/outbound/nope.jpg")}),
    ))
    .await;
    w.enqueue(&media_send(
        "too-big",
        "sticker",
        json!({"s3": format!("s3://{bucket}/outbound/big.webp")}),
    ))
    .await;
    w.run().await;
    let missing = w.ledger("missing").await.unwrap();
    assert_eq!(missing.state, SendState::Failed);
    let reason = format!("{missing:?}");
    assert!(reason.contains("does not exist"), "{reason}");
    let big = w.ledger("too-big").await.unwrap();
    assert_eq!(big.state, SendState::Failed);
    assert!(format!("{big:?}").contains("at most 512000"), "{big:?}");
    assert_eq!(w.sim.calls(), 0, "no message call");
    assert!(w.sim.uploads().is_empty(), "no upload");
}

#[tokio::test]
async fn a_file_of_the_wrong_type_for_its_kind_is_refused_before_any_upload() {
    let w = World::new("media-out-mime").await;
    let (s3, bucket) = bucket("media-out-mime").await;
    w.user_writes(ANA, "Hola", false).await;
    put(
        &s3,
        &bucket,
        "outbound/menu.pdf",
        receipt(),
        Some("application/pdf"),
    )
    .await;
    w.enqueue(&media_send(
        "pdf-as-image",
        "image",
        json!({"s3": format!("s3://{bucket}/outbound/menu.pdf")}),
    ))
    .await;
    w.run().await;
    let entry = w.ledger("pdf-as-image").await.unwrap();
    assert_eq!(entry.state, SendState::Failed);
    assert!(
        format!("{entry:?}").contains("application/pdf, which WhatsApp does not take for image"),
        "{entry:?}"
    );
    assert!(w.sim.uploads().is_empty());
    assert_eq!(w.sim.calls(), 0);
}

#[tokio::test]
async fn an_upload_meta_refuses_for_the_account_holds_the_send_and_never_makes_it_unknown() {
    let w = World::with("media-out-account", |o| {
        o.account.pause = std::time::Duration::from_millis(200);
    })
    .await;
    let (s3, bucket) = bucket("media-out-account").await;
    w.user_writes(ANA, "Hola", false).await;
    // Over axum's default 2 MB body limit: the simulator takes what Meta takes.
    put(
        &s3,
        &bucket,
        "outbound/brochure.pdf",
        vec![7; 3 * 1024 * 1024],
        Some("application/pdf"),
    )
    .await;
    let doc = json!({"s3": format!("s3://{bucket}/outbound/brochure.pdf")});
    w.sim.set_account_fault(Some(190));
    w.enqueue(&media_send("brochure-held", "document", doc.clone()))
        .await;
    w.run().await;
    let entry = w.ledger("brochure-held").await.unwrap();
    assert_eq!(entry.state, SendState::Held, "{entry:?}");
    assert_eq!(w.sim.calls(), 0, "no message call: nothing can be unknown");

    // The account works again: after the pause, a probe goes and the send with it.
    w.sim.set_account_fault(None);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    w.enqueue(&media_send("brochure-ok", "document", doc)).await;
    w.run().await;
    assert_eq!(
        w.ledger("brochure-ok").await.unwrap().state,
        SendState::Sent
    );
    assert_eq!(w.sim.uploads()[0].bytes.len(), 3 * 1024 * 1024);
}
