//! What a user message contains, for every type Meta documents (docs/whatsapp-platform.md §4.4).
//!
//! The types are the domain's (`domain::inbound`); this module reads them from Meta's JSON,
//! leniently: a type we do not know, or a part we cannot read, becomes
//! [`MessageContent::Unknown`] with the type name, and the raw JSON stays the source of truth.

use serde::Deserialize;

use super::MessageItem;
use crate::domain::ids::Wamid;
pub use crate::domain::inbound::{MediaKind, MessageContent};

#[derive(Deserialize)]
struct Media {
    id: Option<String>,
    mime_type: Option<String>,
    caption: Option<String>,
    filename: Option<String>,
    sha256: Option<String>,
    #[serde(default)]
    voice: bool,
}

#[derive(Deserialize)]
struct Location {
    latitude: Option<Coordinate>,
    longitude: Option<Coordinate>,
    name: Option<String>,
    address: Option<String>,
}

/// Numbers in some payloads, strings in others.
#[derive(Deserialize)]
#[serde(untagged)]
enum Coordinate {
    Number(f64),
    Text(String),
}

impl Coordinate {
    fn value(self) -> Option<f64> {
        match self {
            Coordinate::Number(n) => Some(n),
            Coordinate::Text(t) => t.trim().parse().ok(),
        }
    }
}

#[derive(Deserialize)]
struct Interactive {
    #[serde(rename = "type")]
    kind: Option<String>,
    button_reply: Option<Reply>,
    list_reply: Option<Reply>,
    nfm_reply: Option<FlowReply>,
}

#[derive(Deserialize)]
struct Reply {
    id: Option<String>,
    title: Option<String>,
}

#[derive(Deserialize)]
struct FlowReply {
    name: Option<String>,
}

#[derive(Deserialize)]
struct Reaction {
    message_id: Option<String>,
    emoji: Option<String>,
}

#[derive(Deserialize)]
struct Order {
    catalog_id: Option<String>,
    #[serde(default)]
    product_items: Vec<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct System {
    #[serde(rename = "type", default, deserialize_with = "super::lenient_string")]
    kind: Option<String>,
    #[serde(default, deserialize_with = "super::lenient_string")]
    body: Option<String>,
    /// The new number (`user_changed_number`).
    #[serde(default, deserialize_with = "super::lenient_string")]
    wa_id: Option<String>,
    /// The new number in older payloads (`customer_changed_number`).
    #[serde(default, deserialize_with = "super::lenient_string")]
    new_wa_id: Option<String>,
    /// The new BSUID (`user_changed_user_id`).
    #[serde(default, deserialize_with = "super::lenient_string")]
    user_id: Option<String>,
}

#[derive(Deserialize)]
struct Unsupported {
    #[serde(rename = "type")]
    kind: Option<String>,
}

/// The object `raw` (one of the item's), if it reads as `T`.
fn read<T: serde::de::DeserializeOwned>(raw: Option<&str>) -> Option<T> {
    raw.and_then(|r| serde_json::from_str(r).ok())
}

impl MessageContent {
    /// Reads the content of a stored message item of type `kind` from its raw JSON.
    pub fn parse(kind: &str, raw: &str) -> MessageContent {
        match serde_json::from_str::<MessageItem>(raw) {
            Ok(mut item) => Self::of_item(kind, &mut item),
            Err(_) => MessageContent::Unknown {
                kind: kind.to_owned(),
            },
        }
    }

    /// The content of an item already read, for its `type` `kind`. A text message's body moves out of
    /// the item rather than being copied (it is the one part that can be long).
    pub fn of_item(kind: &str, item: &mut MessageItem<'_>) -> MessageContent {
        Self::try_of_item(kind, item).unwrap_or_else(|| MessageContent::Unknown {
            kind: kind.to_owned(),
        })
    }

    fn try_of_item(kind: &str, item: &mut MessageItem<'_>) -> Option<MessageContent> {
        // Only the object named after the type is read.
        let object = item.object(kind);
        if let Some(media) = MediaKind::parse(kind) {
            let m: Media = read(object)?;
            return Some(MessageContent::Media {
                kind: media,
                id: m.id,
                mime_type: m.mime_type,
                caption: m.caption,
                filename: m.filename,
                sha256: m.sha256,
                voice: m.voice,
            });
        }
        Some(match kind {
            "text" => MessageContent::Text {
                body: item.text.as_mut()?.body.take()?,
            },
            "location" => {
                let l: Location = read(object)?;
                MessageContent::Location {
                    latitude: l.latitude.and_then(Coordinate::value),
                    longitude: l.longitude.and_then(Coordinate::value),
                    name: l.name,
                    address: l.address,
                }
            }
            "contacts" => MessageContent::Contacts {
                count: read::<Vec<serde::de::IgnoredAny>>(object)?.len(),
            },
            "interactive" => {
                let i: Interactive = read(object)?;
                let reply = i.button_reply.or(i.list_reply);
                MessageContent::Interactive {
                    kind: i.kind.unwrap_or_default(),
                    id: reply.as_ref().and_then(|r| r.id.clone()),
                    title: reply
                        .and_then(|r| r.title)
                        .or_else(|| i.nfm_reply.and_then(|n| n.name)),
                }
            }
            "button" => {
                let b = item.button.as_ref()?;
                MessageContent::Button {
                    text: b.text.clone(),
                    payload: b.payload.clone(),
                }
            }
            "reaction" => {
                let r: Reaction = read(object)?;
                MessageContent::Reaction {
                    message_id: r.message_id.and_then(|m| Wamid::parse(&m).ok()),
                    emoji: r.emoji.filter(|e| !e.is_empty()),
                }
            }
            "order" => {
                let o: Order = read(object)?;
                MessageContent::Order {
                    catalog_id: o.catalog_id,
                    items: o.product_items.len(),
                }
            }
            "system" => {
                let s: System = read(object)?;
                MessageContent::System {
                    kind: s.kind,
                    body: s.body,
                    new_wa_id: s.wa_id.or(s.new_wa_id),
                    new_user_id: s.user_id,
                }
            }
            "unsupported" | "unknown" => MessageContent::Unsupported {
                original_type: read::<Unsupported>(item.unsupported.map(|r| r.0))
                    .and_then(|u| u.kind),
            },
            "request_welcome" => MessageContent::RequestWelcome,
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(kind: &str, content: &str) -> MessageContent {
        MessageContent::parse(
            kind,
            &format!(r#"{{"id":"wamid.X","type":"{kind}",{content}}}"#),
        )
    }

    #[test]
    fn every_documented_type_is_read() {
        assert_eq!(
            parse("text", r#""text":{"body":"Ol\u00e1"}"#),
            MessageContent::Text {
                body: "Olá".into()
            }
        );
        let img = parse(
            "image",
            r#""image":{"id":"1479","mime_type":"image/jpeg","sha256":"x","caption":"Receipt"}"#,
        );
        assert!(
            matches!(img, MessageContent::Media { kind: MediaKind::Image, id: Some(ref id), caption: Some(_), .. } if id == "1479")
        );
        let voice = parse(
            "audio",
            r#""audio":{"id":"9","mime_type":"audio/ogg; codecs=opus","voice":true}"#,
        );
        assert_eq!(voice.label(), "[voice note]");
        let doc = parse(
            "document",
            r#""document":{"id":"5","filename":"invoice.pdf","mime_type":"application/pdf"}"#,
        );
        assert!(matches!(
            doc,
            MessageContent::Media {
                filename: Some(_),
                ..
            }
        ));
        assert!(matches!(
            parse("sticker", r#""sticker":{"id":"7","animated":false}"#),
            MessageContent::Media {
                kind: MediaKind::Sticker,
                ..
            }
        ));
        assert!(matches!(
            parse("video", r#""video":{"id":"8"}"#),
            MessageContent::Media {
                kind: MediaKind::Video,
                ..
            }
        ));

        let loc = parse(
            "location",
            r#""location":{"latitude":"-23.5","longitude":-46.6,"name":"Pa\u00e7o"}"#,
        );
        assert_eq!(
            loc,
            MessageContent::Location {
                latitude: Some(-23.5),
                longitude: Some(-46.6),
                name: Some("Paço".into()),
                address: None
            }
        );
        assert_eq!(
            parse("contacts", r#""contacts":[{"name":{}},{"name":{}}]"#),
            MessageContent::Contacts { count: 2 }
        );
        assert_eq!(
            parse(
                "interactive",
                r#""interactive":{"type":"button_reply","button_reply":{"id":"yes","title":"Yes"}}"#
            ),
            MessageContent::Interactive {
                kind: "button_reply".into(),
                id: Some("yes".into()),
                title: Some("Yes".into())
            }
        );
        assert!(matches!(
            parse("interactive", r#""interactive":{"type":"nfm_reply","nfm_reply":{"name":"flow","response_json":"{}"}}"#),
            MessageContent::Interactive { title: Some(ref t), .. } if t == "flow"
        ));
        assert!(matches!(
            parse(
                "button",
                r#""button":{"text":"Stop promotions","payload":"x"}"#
            ),
            MessageContent::Button { .. }
        ));
        assert_eq!(
            parse(
                "reaction",
                r#""reaction":{"message_id":"wamid.Y","emoji":""}"#
            )
            .label(),
            "[reaction removed]"
        );
        assert_eq!(
            parse(
                "order",
                r#""order":{"catalog_id":"c","product_items":[{},{},{}]}"#
            ),
            MessageContent::Order {
                catalog_id: Some("c".into()),
                items: 3
            }
        );
        assert!(matches!(
            parse(
                "system",
                r#""system":{"type":"customer_changed_number","body":"x"}"#
            ),
            MessageContent::System { .. }
        ));
        assert_eq!(
            parse(
                "unsupported",
                r#""errors":[{"code":131051}],"unsupported":{"type":"poll_creation"}"#
            ),
            MessageContent::Unsupported {
                original_type: Some("poll_creation".into())
            }
        );
        assert_eq!(
            parse("request_welcome", r#""x":1"#),
            MessageContent::RequestWelcome
        );
    }

    #[test]
    fn unknown_or_unreadable_content_is_unknown_not_an_error() {
        assert_eq!(
            parse("hologram", r#""hologram":{}"#),
            MessageContent::Unknown {
                kind: "hologram".into()
            }
        );
        assert_eq!(
            parse("text", r#""text":"not an object""#),
            MessageContent::Unknown {
                kind: "text".into()
            }
        );
        assert_eq!(
            parse("image", r#""x":1"#),
            MessageContent::Unknown {
                kind: "image".into()
            }
        );
    }

    #[test]
    fn labels_never_carry_the_users_words() {
        let t = parse("text", r#""text":{"body":"my card number is 4111"}"#);
        assert_eq!(t.label(), "[text, 22 chars]");
    }
}
