//! The media side of an inbound message record: its state (`domain::media::MediaState`), the lease of
//! the worker fetching it, and where the bytes went. Every step is one conditional update, so two jobs
//! for the same message (a redelivery, SQS's at-least-once) never download it twice at once and never
//! undo a final state.

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};

use super::attrs::{get_n, get_s, n, s, Item, UpdateBuilder};
use super::tables::MESSAGES;
use super::{condition_failed, Store, StoreError};
use crate::domain::ids::{PhoneNumberId, Wamid};
use crate::domain::inbound::MediaKind;
use crate::domain::media::MediaState;
use crate::domain::time::UnixTime;

/// What the stored message says about its media.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRecord {
    pub wamid: Wamid,
    pub number: PhoneNumberId,
    pub kind: MediaKind,
    pub media_id: String,
    pub mime_type: Option<String>,
    /// Meta's checksum from the webhook, as written there.
    pub sha256: Option<String>,
    pub state: Option<MediaState>,
    /// The message's payload time: Meta keeps media ids for 7 days from it.
    pub at: Option<UnixTime>,
}

/// Where verified bytes were put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMedia {
    pub bucket: String,
    pub key: String,
    pub size: u64,
    pub mime_type: Option<String>,
    pub sha256_hex: String,
    /// Whether `sha256_hex` matched Meta's checksum (`false`: Meta gave none to check against).
    pub verified: bool,
}

/// How a fetch ended, for the record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaOutcome {
    Stored(StoredMedia),
    /// `announced`: Meta's (or the host's) size said so and nothing was read; otherwise the bytes
    /// passed the cap as they streamed.
    TooLarge {
        size: u64,
        cap: u64,
        announced: bool,
    },
    Mismatch {
        expected_hex: String,
        got_hex: String,
    },
    Gone {
        reason: String,
    },
}

/// The answer to a claim.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaClaim {
    /// This worker holds it until the lease ends.
    Claimed,
    /// Already done (or never had media): nothing to do.
    Done(Option<MediaState>),
    /// Another worker holds a live lease: try again later.
    Busy { lease_until: i64 },
    /// No such message.
    Missing,
}

const STATE: &str = "media_state";
const LEASE: &str = "media_lease_until";
const CLAIM: &str = "media_claim";

impl Store {
    /// Reads a message's media facts (consistent read). `None` if the message is not stored or has
    /// no media id.
    pub async fn media_record(&self, wamid: &Wamid) -> Result<Option<MediaRecord>, StoreError> {
        let table = &self.tables.messages;
        let out = self
            .client
            .get_item()
            .table_name(table)
            .key(MESSAGES.partition_key.name, s(wamid.as_str()))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| StoreError::dynamo("GetItem", table, e))?;
        Ok(out.item.as_ref().and_then(|item| media_record(wamid, item)))
    }

    /// The job is on the queue: `pending` → `queued` (a later state is left as it is).
    pub async fn mark_media_queued(&self, wamid: &Wamid) -> Result<(), StoreError> {
        let mut u = UpdateBuilder::default();
        u.set(STATE, s(MediaState::Queued.as_str()));
        let state = u.name_of(STATE);
        u.values
            .insert(":pending".into(), s(MediaState::Pending.as_str()));
        let condition = format!("{state} = :pending");
        self.update_media(wamid, u, condition).await.map(|_| ())
    }

    /// Takes the media for `lease_secs` under `claim` (a token only this worker knows): from
    /// `pending`/`queued`, or from `fetching` whose lease has ended (a worker that died
    /// mid-download). Final states are never taken again.
    pub async fn claim_media(
        &self,
        wamid: &Wamid,
        claim: &str,
        now: UnixTime,
        lease_secs: i64,
    ) -> Result<MediaClaim, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set(STATE, s(MediaState::Fetching.as_str()));
        u.set(LEASE, n(now.secs() + lease_secs));
        u.set(CLAIM, s(claim));
        let (state, lease) = (u.name_of(STATE), u.name_of(LEASE));
        for (placeholder, value) in [
            (":pending", MediaState::Pending),
            (":queued", MediaState::Queued),
            (":fetching", MediaState::Fetching),
        ] {
            u.values.insert(placeholder.into(), s(value.as_str()));
        }
        u.values.insert(":now".into(), n(now.secs()));
        let condition =
            format!("{state} IN (:pending, :queued) OR ({state} = :fetching AND {lease} < :now)");
        match self.update_media(wamid, u, condition).await? {
            None => Ok(MediaClaim::Claimed),
            Some(old) if old.is_empty() => Ok(MediaClaim::Missing),
            Some(old) => {
                let state = get_s(&old, STATE).and_then(MediaState::parse);
                Ok(match state {
                    Some(MediaState::Fetching) => MediaClaim::Busy {
                        lease_until: get_n(&old, LEASE).unwrap_or(0),
                    },
                    other => MediaClaim::Done(other),
                })
            }
        }
    }

    /// Records how the fetch ended and gives up the lease. Only the holder of `claim` does: `false`
    /// if the lease was lost (another worker took over after it ended).
    pub async fn finish_media(
        &self,
        wamid: &Wamid,
        claim: &str,
        outcome: &MediaOutcome,
        now: UnixTime,
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        let state = match outcome {
            MediaOutcome::Stored(m) => {
                let checksum = if m.verified {
                    "media_sha256_verified"
                } else {
                    // Meta gave nothing to check against: say so rather than call it verified.
                    u.set("media_unchecked", AttributeValue::Bool(true));
                    "media_sha256_computed"
                };
                u.set("media_bucket", s(&m.bucket))
                    .set("media_key", s(&m.key))
                    .set("media_size", n(m.size as i64))
                    .set(checksum, s(&m.sha256_hex))
                    .set_opt("media_content_type", m.mime_type.as_deref().map(s))
                    .remove("media_problem");
                MediaState::Stored
            }
            MediaOutcome::TooLarge {
                size,
                cap,
                announced,
            } => {
                let what = if *announced {
                    format!("{size} bytes (as announced) is over the cap of {cap} bytes for this kind; not downloaded")
                } else {
                    format!("more than {cap} bytes arrived (over the cap for this kind; {size} read before stopping); not kept")
                };
                u.set("media_size", n(*size as i64))
                    .set("media_problem", s(what));
                MediaState::TooLarge
            }
            MediaOutcome::Mismatch {
                expected_hex,
                got_hex,
            } => {
                u.set(
                    "media_problem",
                    s(format!(
                        "the bytes hash to sha256 {got_hex}, Meta said {expected_hex}; nothing was kept"
                    )),
                );
                MediaState::Mismatch
            }
            MediaOutcome::Gone { reason } => {
                u.set("media_problem", s(reason));
                MediaState::Gone
            }
        };
        u.set(STATE, s(state.as_str()))
            .set("media_done_at", n(now.secs()))
            .remove(LEASE)
            .remove(CLAIM);
        let condition = holder_condition(&mut u, claim);
        Ok(self.update_media(wamid, u, condition).await?.is_none())
    }

    /// Gives the lease back after a failure worth retrying (`queued` again, the problem noted), so
    /// the queue's next delivery of the job can claim it at once. Only the holder of `claim` does.
    pub async fn release_media(
        &self,
        wamid: &Wamid,
        claim: &str,
        problem: &str,
    ) -> Result<bool, StoreError> {
        let mut u = UpdateBuilder::default();
        u.set(STATE, s(MediaState::Queued.as_str()))
            .set("media_problem", s(problem))
            .remove(LEASE)
            .remove(CLAIM);
        let condition = holder_condition(&mut u, claim);
        Ok(self.update_media(wamid, u, condition).await?.is_none())
    }

    /// `None` when written; the item as it was when the condition failed (empty if absent).
    async fn update_media(
        &self,
        wamid: &Wamid,
        u: UpdateBuilder,
        condition: String,
    ) -> Result<Option<Item>, StoreError> {
        let table = &self.tables.messages;
        let key = MESSAGES.partition_key.name;
        let mut names = u.names.clone();
        names.insert("#pk".into(), key.into());
        let result = self
            .client
            .update_item()
            .table_name(table)
            .key(key, s(wamid.as_str()))
            .update_expression(u.expression())
            // Never create a record: a job for a message we did not store has nothing to update.
            .condition_expression(format!("attribute_exists(#pk) AND ({condition})"))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(u.values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        match result {
            Ok(_) => Ok(None),
            Err(e) if condition_failed(&e) => Ok(Some(
                match e.into_service_error() {
                    UpdateItemError::ConditionalCheckFailedException(c) => c.item,
                    _ => None,
                }
                .unwrap_or_default(),
            )),
            Err(e) => Err(StoreError::dynamo("UpdateItem", table, e)),
        }
    }
}

/// `fetching`, under this claim.
fn holder_condition(u: &mut UpdateBuilder, claim: &str) -> String {
    let (state, holder) = (u.name_of(STATE), u.name_of(CLAIM));
    u.values
        .insert(":fetching".into(), s(MediaState::Fetching.as_str()));
    u.values.insert(":claim".into(), s(claim));
    format!("{state} = :fetching AND {holder} = :claim")
}

fn media_record(wamid: &Wamid, item: &Item) -> Option<MediaRecord> {
    let owned = |name| get_s(item, name).map(str::to_owned);
    Some(MediaRecord {
        wamid: wamid.clone(),
        number: PhoneNumberId::parse(get_s(item, "number")?).ok()?,
        kind: MediaKind::parse(get_s(item, "type")?)?,
        media_id: owned("media_id")?,
        mime_type: owned("mime_type"),
        sha256: owned("media_sha256"),
        state: get_s(item, STATE).and_then(MediaState::parse),
        at: get_n(item, "at").map(UnixTime::from_secs),
    })
}
