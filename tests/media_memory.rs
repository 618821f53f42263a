//! Memory stays flat while a large file streams through the media path: a 50 MB document from the
//! Meta simulator into moto's S3, with the process's peak RSS read before and after. Its own test
//! binary, so no other test's allocations share the process.

use wahook::domain::media::MediaCaps;
use wahook_meta_sim::media::SimMedia;
use wahook_tests::media::MediaWorld;

const FILE_BYTES: u64 = 50 * 1024 * 1024;

/// `VmHWM` (peak resident set) of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM in /proc/self/status")
        * 1024
}

#[tokio::test]
async fn a_50_mb_document_streams_through_without_the_file_in_memory() {
    let w = MediaWorld::with("media-50mb", |c| c.caps = MediaCaps::default()).await;
    w.user_sends(
        "wamid.MEDIA-50MB",
        "document",
        SimMedia::generated("application/pdf", FILE_BYTES),
    )
    .await;
    let before = peak_rss();
    assert_eq!(w.drain().await, (1, 0));
    let after = peak_rss();
    let record = w.harness.message_item("wamid.MEDIA-50MB").await.unwrap();
    assert_eq!(record["media_state"], "stored");
    assert_eq!(record["media_size"], FILE_BYTES.to_string());
    let grew = after.saturating_sub(before);
    eprintln!(
        "peak RSS {:.1} MiB before, {:.1} MiB after a {} MiB download: +{:.1} MiB",
        before as f64 / 1048576.0,
        after as f64 / 1048576.0,
        FILE_BYTES / 1048576,
        grew as f64 / 1048576.0
    );
    // One 8 MiB part in our buffer and the SDK's copy of it while it is sent, never the file.
    assert!(
        grew < FILE_BYTES / 2,
        "peak RSS grew by {grew} bytes for a {FILE_BYTES}-byte file: the download is being buffered"
    );
    w.stop().await;
}
