//! A template's parameter shape, read from the components Meta lists (the sync), and the check of a
//! send's components against it (DESIGN rule 20: a wrong parameter count is found before Meta's
//! 132000, not by it).
//!
//! The check is deliberately narrow: it refuses only what Meta certainly refuses (a body or header
//! with the wrong number of parameters, a media header without its media, a dynamic URL button
//! without its parameter). Anything it does not model (carousels, limited-time offers, flows, OTP
//! buttons) is left for Meta to judge: a false refusal would stop a good send, which is worse than
//! Meta's own 132000.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The parts of a template a send must fill.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TemplateShape {
    /// The header's format (`TEXT`, `IMAGE`, `VIDEO`, `DOCUMENT`, `LOCATION`); `None`: no header.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    /// Variables in a text header.
    #[serde(default)]
    pub header_params: usize,
    /// Variables in the body (distinct `{{1}}` or `{{name}}` placeholders).
    #[serde(default)]
    pub body_params: usize,
    /// The index of each URL button whose URL has a variable.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub url_buttons: Vec<usize>,
}

/// Component types whose parameters the check understands; a template with any other is not
/// checked at all.
const MODELLED_COMPONENTS: &[&str] = &["HEADER", "BODY", "FOOTER", "BUTTONS"];

/// Header formats whose send parameter is one media object of the same name.
const MEDIA_HEADERS: &[&str] = &["IMAGE", "VIDEO", "DOCUMENT", "LOCATION"];

impl TemplateShape {
    /// The shape of a listed template's `components`; `None` when they hold something the check
    /// does not model (then Meta judges the parameters).
    pub fn from_components(components: &[Value]) -> Option<Self> {
        let mut shape = TemplateShape::default();
        for c in components {
            let kind = c.get("type")?.as_str()?.to_ascii_uppercase();
            if !MODELLED_COMPONENTS.contains(&kind.as_str()) {
                return None;
            }
            let text = c.get("text").and_then(Value::as_str).unwrap_or_default();
            match kind.as_str() {
                "HEADER" => {
                    let format = c
                        .get("format")
                        .and_then(Value::as_str)
                        .unwrap_or("TEXT")
                        .to_ascii_uppercase();
                    if format != "TEXT" && !MEDIA_HEADERS.contains(&format.as_str()) {
                        return None;
                    }
                    if format == "TEXT" {
                        shape.header_params = placeholders(text)?;
                    }
                    shape.header = Some(format);
                }
                "BODY" => shape.body_params = placeholders(text)?,
                "BUTTONS" => {
                    for (i, b) in c.get("buttons")?.as_array()?.iter().enumerate() {
                        let is_url = b
                            .get("type")
                            .and_then(Value::as_str)
                            .is_some_and(|t| t.eq_ignore_ascii_case("URL"));
                        let url = b.get("url").and_then(Value::as_str).unwrap_or_default();
                        if is_url && placeholders(url)? > 0 {
                            shape.url_buttons.push(i);
                        }
                    }
                }
                _ => {}
            }
        }
        Some(shape)
    }

    /// What a send's `components` leave out or get wrong, in words a producer can act on; empty
    /// when they fit.
    pub fn problems(&self, components: &[Value]) -> Vec<String> {
        let mut problems = Vec::new();
        let of_type = |t: &'static str| {
            components.iter().filter(move |c| {
                c.get("type")
                    .and_then(Value::as_str)
                    .is_some_and(|k| k.eq_ignore_ascii_case(t))
            })
        };
        let params = |c: &Value| -> Vec<Value> {
            c.get("parameters")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        };
        let header: Vec<Value> = of_type("header").flat_map(params).collect();
        match self.header.as_deref() {
            Some(media) if media != "TEXT" => {
                let want = media.to_ascii_lowercase();
                let given: Vec<&str> = header
                    .iter()
                    .filter_map(|p| p.get("type").and_then(Value::as_str))
                    .collect();
                if !(given.len() == 1 && given[0].eq_ignore_ascii_case(&want)) {
                    problems.push(format!(
                        "the header needs one {want} parameter (the template's header is {media}); the request gives {}",
                        describe(&given)
                    ));
                }
            }
            _ => {
                if header.len() != self.header_params {
                    problems.push(count_problem("header", self.header_params, header.len()));
                }
            }
        }
        let body = of_type("body").flat_map(params).count();
        if body != self.body_params {
            problems.push(count_problem("body", self.body_params, body));
        }
        for index in &self.url_buttons {
            let filled = of_type("button").any(|c| {
                let sub = c
                    .get("sub_type")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let at = match c.get("index") {
                    Some(Value::String(s)) => s.trim().parse::<usize>().ok(),
                    Some(Value::Number(n)) => n.as_u64().map(|n| n as usize),
                    _ => None,
                };
                sub.eq_ignore_ascii_case("url") && at == Some(*index) && !params(c).is_empty()
            });
            if !filled {
                problems.push(format!(
                    "button {index} is a URL with a variable: add {{\"type\":\"button\",\"sub_type\":\"url\",\"index\":\"{index}\",\"parameters\":[{{\"type\":\"text\",\"text\":\"…\"}}]}}"
                ));
            }
        }
        problems
    }
}

fn count_problem(part: &str, want: usize, given: usize) -> String {
    format!(
        "the {part} has {want} variable{} but the request gives {given} parameter{}",
        if want == 1 { "" } else { "s" },
        if given == 1 { "" } else { "s" }
    )
}

fn describe(types: &[&str]) -> String {
    if types.is_empty() {
        "none".into()
    } else {
        types.join(", ")
    }
}

/// Distinct `{{…}}` placeholders in a template text: `{{1}}` and `{{first_name}}` alike, a repeat
/// counted once. `None` when any `{{` is not exactly a placeholder (`{{ 1 }}`, `{{{1}}}`, an open
/// `{{`): what Meta makes of those is not certain, so the template is not checked.
fn placeholders(text: &str) -> Option<usize> {
    let mut seen = BTreeSet::new();
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let close = after.find("}}")?;
        let name = &after[..close];
        let exact =
            !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !exact {
            return None;
        }
        seen.insert(name.to_owned());
        rest = &after[close + 2..];
    }
    Some(seen.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn listed() -> Vec<Value> {
        json!([
            {"type": "HEADER", "format": "IMAGE", "example": {"header_handle": ["4::aW..."]}},
            {"type": "BODY", "text": "Hola {{1}}, tu pedido {{2}} va en camino. {{1}}, gracias."},
            {"type": "FOOTER", "text": "No respondas"},
            {"type": "BUTTONS", "buttons": [
                {"type": "QUICK_REPLY", "text": "Parar"},
                {"type": "URL", "text": "Seguir", "url": "https://t.example/{{1}}"},
                {"type": "URL", "text": "Tienda", "url": "https://shop.example/"}
            ]}
        ])
        .as_array()
        .unwrap()
        .clone()
    }

    fn send(components: Value) -> Vec<Value> {
        components.as_array().unwrap().clone()
    }

    #[test]
    fn the_shape_counts_distinct_variables_and_dynamic_url_buttons() {
        let shape = TemplateShape::from_components(&listed()).unwrap();
        assert_eq!(
            shape,
            TemplateShape {
                header: Some("IMAGE".into()),
                header_params: 0,
                body_params: 2,
                url_buttons: vec![1],
            }
        );
        let named = TemplateShape::from_components(&send(json!([
            {"type": "HEADER", "format": "TEXT", "text": "Hi {{first_name}}"},
            {"type": "BODY", "text": "{{first_name}}, {{order_id}} ya {{order_id}}"}
        ])))
        .unwrap();
        assert_eq!((named.header_params, named.body_params), (1, 2));
        // Anything that is not exactly a placeholder leaves the template unchecked.
        for odd in ["{{ 1 }}", "{{{1}}}", "{{a {{1}}", "open {{", "{{1}} {{}}"] {
            let c = send(json!([{"type": "BODY", "text": odd}]));
            assert_eq!(TemplateShape::from_components(&c), None, "{odd:?}");
        }
    }

    #[test]
    fn a_send_that_fits_has_no_problems() {
        let shape = TemplateShape::from_components(&listed()).unwrap();
        let ok = send(json!([
            {"type": "header", "parameters": [{"type": "image", "image": {"link": "https://x/y.jpg"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}, {"type": "text", "text": "A-1"}]},
            {"type": "button", "sub_type": "url", "index": "1", "parameters": [{"type": "text", "text": "A-1"}]}
        ]));
        assert_eq!(shape.problems(&ok), Vec::<String>::new());
        // The index as a number reads the same.
        let mut numeric = ok.clone();
        numeric[2]["index"] = json!(1);
        assert!(shape.problems(&numeric).is_empty());
    }

    #[test]
    fn each_missing_part_is_named() {
        let shape = TemplateShape::from_components(&listed()).unwrap();
        let bad = send(json!([
            {"type": "header", "parameters": [{"type": "video", "video": {"id": "1"}}]},
            {"type": "body", "parameters": [{"type": "text", "text": "Ana"}]}
        ]));
        let problems = shape.problems(&bad);
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("one image parameter") && problems[0].contains("video"));
        assert!(problems[1].contains("body has 2 variables but the request gives 1 parameter"));
        assert!(problems[2].contains("button 1"));
        let none = shape.problems(&[]);
        assert!(none[0].contains("gives none"), "{none:?}");
    }

    #[test]
    fn parameters_for_a_template_without_variables_are_refused() {
        let shape = TemplateShape::from_components(&send(json!([
            {"type": "BODY", "text": "Your order shipped."}
        ])))
        .unwrap();
        assert!(shape.problems(&[]).is_empty());
        let extra = send(json!([{"type": "body", "parameters": [{"type": "text", "text": "x"}]}]));
        assert_eq!(shape.problems(&extra).len(), 1);
        let header =
            send(json!([{"type": "header", "parameters": [{"type": "text", "text": "x"}]}]));
        assert!(shape.problems(&header)[0].contains("header has 0 variables"));
    }

    #[test]
    fn what_the_check_does_not_model_is_not_checked() {
        for components in [
            json!([{"type": "BODY", "text": "{{1}}"}, {"type": "CAROUSEL", "cards": []}]),
            json!([{"type": "HEADER", "format": "PRODUCT"}]),
            json!([{"type": "LIMITED_TIME_OFFER"}]),
            json!([{"text": "no type"}]),
        ] {
            assert_eq!(TemplateShape::from_components(&send(components)), None);
        }
        // An OTP button is not a URL button: an authentication send is not asked for one.
        let auth = TemplateShape::from_components(&send(json!([
            {"type": "BODY", "text": "*{{1}}* is your verification code."},
            {"type": "BUTTONS", "buttons": [{"type": "OTP", "otp_type": "COPY_CODE"}]}
        ])))
        .unwrap();
        assert!(auth.url_buttons.is_empty());
    }

    #[test]
    fn hostile_texts_do_not_crash_the_counter() {
        for t in ["{{", "}}{{", "{{{{}}}}", "{{\u{1F600}}}"] {
            assert_eq!(placeholders(t), None, "{t:?}");
        }
        assert_eq!(placeholders("}}"), Some(0));
        assert_eq!(placeholders(&"{{1}}".repeat(10_000)), Some(1));
    }
}
