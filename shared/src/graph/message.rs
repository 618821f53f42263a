//! Meta's wire JSON for one outbound message (`POST /{phone_number_id}/messages`): what a
//! [`SendRequest`] becomes on the way out. Kept next to the client, so the Graph API's shape lives in
//! `graph/` only.

use serde_json::{json, Value};

use crate::domain::ids::{Phone, UserId};
use crate::domain::send_request::{OutboundMessage, SendRequest};

/// Meta's message JSON for a request: E.164 with `+` for phones, our callback marker so status
/// webhooks name the key, and the reply context when given.
///
/// A BSUID goes in `recipient`, not `to` (`docs/whatsapp-platform.md` §12); `known_phone`, the phone
/// we know for that person, goes in `to` beside it (Meta uses the phone when both are set).
pub fn message_body(
    req: &SendRequest,
    message: &OutboundMessage,
    known_phone: Option<&Phone>,
) -> Value {
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "biz_opaque_callback_data": req.idempotency_key.callback_marker(),
    });
    match &req.to {
        UserId::Phone(p) => body["to"] = json!(p.e164()),
        UserId::Bsuid(b) => {
            body["recipient"] = json!(b.as_str());
            if let Some(p) = known_phone {
                body["to"] = json!(p.e164());
            }
        }
    }
    match message {
        OutboundMessage::Template(t) => {
            let mut template = json!({ "name": t.name, "language": { "code": t.language } });
            if !t.components.is_empty() {
                template["components"] = Value::Array(t.components.clone());
            }
            body["type"] = json!("template");
            body["template"] = template;
        }
        OutboundMessage::Text {
            body: text,
            preview_url,
        } => {
            body["type"] = json!("text");
            body["text"] = json!({ "body": text, "preview_url": preview_url });
        }
        // The media id is set once the file is uploaded (`with_media_id`).
        OutboundMessage::Media(m) => {
            let mut object = json!({});
            if let Some(c) = &m.caption {
                object["caption"] = json!(c);
            }
            if let Some(f) = &m.filename {
                object["filename"] = json!(f);
            }
            body["type"] = json!(m.kind.as_str());
            body[m.kind.as_str()] = object;
        }
    }
    if let Some(reply_to) = &req.reply_to {
        body["context"] = json!({ "message_id": reply_to.as_str() });
    }
    body
}

/// Names the uploaded file in a media message's body.
pub fn with_media_id(body: &mut Value, message: &OutboundMessage, media_id: &str) {
    if let OutboundMessage::Media(m) = message {
        body[m.kind.as_str()]["id"] = json!(media_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_body_is_metas_wire_format() {
        let req = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"order-1","to":"+52 1 55 1234 5678","category":"utility","reply_to":"wamid.IN",
                "template":{"name":"order_shipped","language":"es_MX","components":[{"type":"body","parameters":[{"type":"text","text":"Ana"}]}]}}"#,
        )
        .unwrap();
        let body = message_body(&req, &req.message, None);
        assert_eq!(
            body,
            json!({
                "messaging_product": "whatsapp", "recipient_type": "individual", "to": "+5215512345678",
                "biz_opaque_callback_data": "wahook:order-1", "type": "template",
                "template": {"name": "order_shipped", "language": {"code": "es_MX"},
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}]},
                "context": {"message_id": "wamid.IN"}
            })
        );
        let text = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"k","to":"MX.1310418412279093","text":{"body":"Hola"}}"#,
        )
        .unwrap();
        let body = message_body(&text, &text.message, None);
        assert_eq!(body["recipient"], "MX.1310418412279093");
        assert!(body.get("to").is_none(), "a BSUID never goes in to: {body}");
        let phone = Phone::parse("5215512345678").unwrap();
        let body = message_body(&text, &text.message, Some(&phone));
        assert_eq!(body["recipient"], "MX.1310418412279093");
        assert_eq!(
            body["to"], "+5215512345678",
            "the known phone goes beside it"
        );
        assert_eq!(body["text"], json!({"body": "Hola", "preview_url": false}));
        assert!(body.get("context").is_none());

        let doc = SendRequest::parse(
            r#"{"v":1,"idempotency_key":"k","to":"+5215512345678","document":{"s3":"s3://files/inv/77.pdf","caption":"Your invoice","filename":"invoice-77.pdf"}}"#,
        )
        .unwrap();
        let mut body = message_body(&doc, &doc.message, None);
        with_media_id(&mut body, &doc.message, "1013859600285441");
        assert_eq!(body["type"], "document");
        assert_eq!(
            body["document"],
            json!({"id": "1013859600285441", "caption": "Your invoice", "filename": "invoice-77.pdf"})
        );
    }
}
