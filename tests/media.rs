//! Inbound media against real parts: the webhook queues a job on moto's SQS, the media service
//! resolves the id at the Meta simulator, streams the bytes into moto's S3 and records the outcome on
//! the message in moto's DynamoDB. Each bad case of docs/media.md has its test here.

use aws_sdk_dynamodb::types::AttributeValue;
use wahook::domain::ids::Wamid;
use wahook::domain::media::MediaState;
use wahook::domain::time::UnixTime;
use wahook::media::{MediaError, MediaQueue, MediaReport};
use wahook::store::media::{MediaClaim, MediaOutcome};
use wahook_meta_sim::media::SimMedia;
use wahook_tests::fixtures::NUMBER;
use wahook_tests::media::MediaWorld;

fn photo() -> Vec<u8> {
    (0..300_000u32).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn an_inbound_image_lands_in_s3_checked_and_recorded() {
    let w = MediaWorld::new("media-ok").await;
    let (media_id, reply) = w
        .user_sends(
            "wamid.MEDIA-OK",
            "image",
            SimMedia::bytes("image/jpeg", photo()),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.body);
    let record = w.harness.message_item("wamid.MEDIA-OK").await.unwrap();
    assert_eq!(record["media_id"], media_id);
    assert_eq!(
        record["media_state"], "queued",
        "queued before Meta got its 200"
    );

    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-OK").await.unwrap();
    assert_eq!(record["media_state"], "stored");
    assert_eq!(record["media_bucket"], w.bucket);
    let key = format!("inbound/{NUMBER}/wamid.MEDIA-OK");
    assert_eq!(record["media_key"], key);
    assert_eq!(record["media_size"], "300000");
    assert_eq!(record["media_content_type"], "image/jpeg");
    assert_eq!(w.object(&key).await.as_deref(), Some(photo().as_slice()));
    assert_eq!(w.sim.media_counts(), (1, 1));
    w.stop().await;
}

#[tokio::test]
async fn the_same_webhook_twice_queues_one_job_and_downloads_once() {
    let w = MediaWorld::new("media-dup").await;
    let (id, first) = w
        .user_sends(
            "wamid.MEDIA-DUP",
            "document",
            SimMedia::bytes("application/pdf", photo()),
        )
        .await;
    let sha = w.harness.message_item("wamid.MEDIA-DUP").await.unwrap()["media_sha256"].clone();
    let again = w
        .deliver_media(
            "wamid.MEDIA-DUP",
            "document",
            &id,
            "application/pdf",
            Some(&sha),
        )
        .await;
    assert_eq!((first.status, again.status), (200, 200));
    assert_eq!(w.drain().await, (1, 0), "one job for two deliveries");
    assert_eq!(w.drain().await, (0, 0));

    // SQS may still hand a job over twice: the second finds the work done.
    let wamid = Wamid::parse("wamid.MEDIA-DUP").unwrap();
    assert_eq!(
        w.service.process(&wamid, None).await.unwrap(),
        MediaReport::Skipped(Some(MediaState::Stored))
    );
    assert_eq!(w.sim.media_counts().1, 1, "downloaded once");
    assert_eq!(w.object_count().await, 1);
    w.stop().await;
}

#[tokio::test]
async fn bytes_that_do_not_match_metas_sha256_are_not_kept() {
    let w = MediaWorld::new("media-sha").await;
    let mut file = SimMedia::bytes("image/png", photo());
    // Meta's checksum of other bytes: what a corrupted or tampered download looks like.
    file.claimed_sha256 = Some("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into());
    w.user_sends("wamid.MEDIA-SHA", "image", file).await;
    assert_eq!(w.drain().await, (1, 0), "final, not retried");
    let record = w.harness.message_item("wamid.MEDIA-SHA").await.unwrap();
    assert_eq!(record["media_state"], "sha256_mismatch");
    assert!(
        record["media_problem"].contains("Meta said 9f86d081"),
        "{}",
        record["media_problem"]
    );
    assert!(!record.contains_key("media_key"));
    assert_eq!(w.object_count().await, 0, "nothing kept");

    // Past one part (8 MiB) the bytes go up as a multipart upload: aborted, not completed.
    let mut big = SimMedia::generated("application/pdf", 9 * 1024 * 1024);
    big.claimed_sha256 = Some("n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=".into());
    w.user_sends("wamid.MEDIA-SHA-BIG", "document", big).await;
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-SHA-BIG").await.unwrap();
    assert_eq!(record["media_state"], "sha256_mismatch");
    assert_eq!(w.object_count().await, 0, "nothing kept");
    assert_eq!(
        w.open_uploads().await,
        0,
        "the multipart upload was aborted"
    );
    w.stop().await;
}

#[tokio::test]
async fn an_expired_url_is_resolved_once_more_and_twice_is_a_retry() {
    let w = MediaWorld::new("media-expired").await;
    w.sim.expire_next_media_urls(1);
    w.user_sends(
        "wamid.MEDIA-EXP1",
        "audio",
        SimMedia::bytes("audio/ogg", photo()),
    )
    .await;
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-EXP1").await.unwrap();
    assert_eq!(record["media_state"], "stored");
    assert_eq!(
        w.sim.media_counts(),
        (2, 1),
        "a fresh URL, then one download"
    );

    w.sim.expire_next_media_urls(2);
    w.user_sends(
        "wamid.MEDIA-EXP2",
        "audio",
        SimMedia::bytes("audio/ogg", photo()),
    )
    .await;
    assert_eq!(w.drain().await, (1, 1), "refused twice: the job comes back");
    let record = w.harness.message_item("wamid.MEDIA-EXP2").await.unwrap();
    assert_eq!(record["media_state"], "queued", "the lease is given back");
    assert!(
        record["media_problem"].contains("refused"),
        "{}",
        record["media_problem"]
    );
    // The queue's redelivery (here: the same job again) then stores it.
    let wamid = Wamid::parse("wamid.MEDIA-EXP2").unwrap();
    assert_eq!(
        w.service.process(&wamid, None).await.unwrap(),
        MediaReport::Done(MediaState::Stored)
    );
    w.stop().await;
}

#[tokio::test]
async fn a_file_over_its_cap_is_recorded_as_too_large_and_not_downloaded() {
    let w = MediaWorld::with("media-cap", |c| c.caps.image = 100_000).await;
    w.user_sends(
        "wamid.MEDIA-BIG",
        "image",
        SimMedia::bytes("image/jpeg", photo()),
    )
    .await;
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-BIG").await.unwrap();
    assert_eq!(record["media_state"], "too_large");
    assert_eq!(record["media_size"], "300000");
    assert_eq!(w.sim.media_counts().1, 0, "never downloaded");

    // A host that says less than it sends is cut off at the cap.
    let mut liar = SimMedia::bytes("image/jpeg", photo());
    liar.claimed_size = Some(10);
    w.user_sends("wamid.MEDIA-LIAR", "image", liar).await;
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-LIAR").await.unwrap();
    assert_eq!(record["media_state"], "too_large");
    assert!(
        record["media_problem"].starts_with("more than 100000 bytes arrived"),
        "cut off while streaming: {}",
        record["media_problem"]
    );
    assert!(w.sim.media_counts().1 > 0, "this one was being downloaded");
    assert_eq!(w.object_count().await, 0);
    w.stop().await;
}

#[tokio::test]
async fn media_meta_no_longer_has_is_recorded_as_gone() {
    let w = MediaWorld::new("media-gone").await;
    let (id, _) = w
        .user_sends(
            "wamid.MEDIA-GONE",
            "video",
            SimMedia::bytes("video/mp4", photo()),
        )
        .await;
    w.sim.delete_media(&id);
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-GONE").await.unwrap();
    assert_eq!(record["media_state"], "gone");
    assert!(
        record["media_problem"].contains("HTTP 404, code 100"),
        "{}",
        record["media_problem"]
    );
    w.stop().await;
}

#[tokio::test]
async fn a_media_queue_outage_answers_503_and_the_redelivery_queues_the_job() {
    let w = MediaWorld::new("media-queue-down").await;
    let (id, sha) = w.sim.add_media(SimMedia::bytes("image/jpeg", photo()));
    // The same webhook, with a queue that does not exist: SQS refuses every job.
    let broken = w.harness.service.clone().with_media_queue(MediaQueue::new(
        w.sqs.clone(),
        format!("{}-missing", w.queue_url),
    ));
    let body = wahook_tests::fixtures::build::envelope(vec![wahook_tests::fixtures::build::media(
        "wamid.MEDIA-Q",
        wahook_tests::media::ANA,
        1_795_400_000,
        "image",
        serde_json::json!({"id": id, "mime_type": "image/jpeg", "sha256": sha}),
    )]);
    let headers = {
        let mut h = http::HeaderMap::new();
        h.insert(
            wahook::signature::SIGNATURE_HEADER,
            wahook_tests::fixtures::sign(&body).parse().unwrap(),
        );
        h
    };
    let answer = broken
        .handle(wahook::webhook::WebhookRequest {
            method: &http::Method::POST,
            headers: &headers,
            query: Default::default(),
            body: &body,
        })
        .await;
    assert_eq!(answer.status, 503, "Meta must redeliver: {}", answer.body);
    let record = w.harness.message_item("wamid.MEDIA-Q").await.unwrap();
    assert_eq!(
        record["media_state"], "pending",
        "stored, job not yet queued"
    );

    // Meta redelivers to the healthy webhook: the message is a duplicate, its job is queued now.
    let reply = w.harness.deliver(&body).await;
    assert_eq!(reply.status, 200);
    assert_eq!(w.drain().await, (1, 0));
    assert_eq!(
        w.harness.message_item("wamid.MEDIA-Q").await.unwrap()["media_state"],
        "stored"
    );
    w.stop().await;
}

#[tokio::test]
async fn a_job_that_cannot_be_read_is_failed_for_the_dlq_and_one_without_media_is_dropped() {
    let w = MediaWorld::new("media-bad-job").await;
    let failed = w
        .service
        .handle_batch(
            vec![
                wahook::media::QueuedJob {
                    message_id: "m1".into(),
                    body: "not json".into(),
                },
                wahook::media::QueuedJob {
                    message_id: "m2".into(),
                    body: r#"{"v":1,"wamid":"wamid.NOT-STORED"}"#.into(),
                },
            ],
            None,
        )
        .await;
    assert_eq!(failed, vec!["m1".to_owned()]);
    w.stop().await;
}

#[tokio::test]
async fn media_meta_gives_no_checksum_for_is_stored_and_marked_unchecked() {
    let w = MediaWorld::new("media-unchecked").await;
    let mut file = SimMedia::bytes("image/jpeg", photo());
    file.no_sha256 = true;
    w.user_sends("wamid.MEDIA-NOSHA", "image", file).await;
    assert_eq!(w.drain().await, (1, 0));
    let record = w.harness.message_item("wamid.MEDIA-NOSHA").await.unwrap();
    assert_eq!(record["media_state"], "stored");
    assert_eq!(record["media_unchecked"], "true");
    assert!(
        !record.contains_key("media_sha256_verified"),
        "not called verified"
    );
    assert_eq!(record["media_sha256_computed"].len(), 64);
    w.stop().await;
}

#[tokio::test]
async fn a_live_claim_holds_off_a_second_job_and_an_ended_one_is_taken_over() {
    let w = MediaWorld::new("media-lease").await;
    w.user_sends(
        "wamid.MEDIA-LEASE",
        "image",
        SimMedia::bytes("image/jpeg", photo()),
    )
    .await;
    let wamid = Wamid::parse("wamid.MEDIA-LEASE").unwrap();
    let store = w.harness.store();
    let now = UnixTime::now();
    // Another worker holds it.
    assert_eq!(
        store.claim_media(&wamid, "other", now, 300).await.unwrap(),
        MediaClaim::Claimed
    );
    match w.service.process(&wamid, None).await {
        Err(MediaError::Busy { lease_until }) => assert_eq!(lease_until, now.secs() + 300),
        other => panic!("expected Busy, got {other:?}"),
    }
    // That worker died and its lease ended: the next job takes the media over and stores it.
    w.harness
        .client
        .update_item()
        .table_name(&w.harness.tables.messages)
        .key("wamid", AttributeValue::S("wamid.MEDIA-LEASE".into()))
        .update_expression("SET media_lease_until = :past")
        .expression_attribute_values(":past", AttributeValue::N((now.secs() - 5).to_string()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        w.service.process(&wamid, None).await.unwrap(),
        MediaReport::Done(MediaState::Stored)
    );
    // The dead worker's late answer changes nothing: its claim is not the holder's.
    let late = MediaOutcome::Gone {
        reason: "late".into(),
    };
    assert!(!store
        .finish_media(&wamid, "other", &late, now)
        .await
        .unwrap());
    assert!(!store.release_media(&wamid, "other", "late").await.unwrap());
    assert_eq!(
        w.harness.message_item("wamid.MEDIA-LEASE").await.unwrap()["media_state"],
        "stored"
    );
    w.stop().await;
}
