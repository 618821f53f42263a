//! A mutation fuzzer on stable Rust (no cargo-fuzz here): real inputs (Meta's payloads from `events/`,
//! valid send and consent requests) with one to three nodes replaced, removed, duplicated or added,
//! or the bytes cut or flipped, fed to every parser input reaches. A crash is a panic that escapes, or
//! an item the webhook's planner had to catch (`PlanCounts::crashed`): both are bugs (DESIGN rule 18).
//! So is a payload whose one-pass plan differs from its level-by-level plan (`inbound::plan`).
//!
//! `tests/hostile_input.rs` runs a bounded number of cases in CI; `scripts/bench.sh fuzz` runs the
//! `fuzz` binary for a million or more.

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::{json, Map, Value};
use wahook::domain::consent_request::ConsentRequest;
use wahook::domain::ids::PhoneNumberId;
use wahook::domain::send_request::SendRequest;
use wahook::domain::time::UnixTime;
use wahook::inbound::plan;
use wahook::inbound::plan::{level_by_level, one_pass_unguarded};
use wahook::inbound::{InboundRules, Plan};

use crate::fixtures::{payload, payload_names};

/// splitmix64: small, fast, and the same sequence for the same seed on every machine.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
}

/// What a hostile or careless sender puts where an id, a time or a text goes.
pub fn hostile_value(rng: &mut Rng) -> Value {
    match rng.below(22) {
        0 => json!(""),
        1 => json!("A"),
        2 => json!("US"),
        3 => json!("US."),
        4 => json!("é"),
        5 => json!("ñ".repeat(1 + rng.below(300))),
        6 => json!("x".repeat(10 * 1024)),
        7 => json!(0),
        8 => json!(-1),
        9 => json!(1e308),
        10 => json!(12_345_678_901_234_567_890_u64),
        11 => Value::Null,
        12 => json!(true),
        13 => json!([]),
        14 => json!([1, "a", null]),
        15 => json!({}),
        16 => json!({"a": null}),
        17 => json!("\u{0}\u{feff}\u{202e}"),
        18 => json!("+52 1 55 1234 5678"),
        19 => json!("MX.ENT.1"),
        20 => {
            // Deeper than serde_json's recursion limit: must be refused, not overflow the stack.
            let mut v = json!(1);
            for _ in 0..(100 + rng.below(100)) {
                v = json!([v]);
            }
            v
        }
        _ => json!(rng.next_u64().to_string()),
    }
}

/// Every node of `v`, as paths of object keys and array indexes.
fn paths(v: &Value, here: &mut Vec<Step>, out: &mut Vec<Vec<Step>>) {
    out.push(here.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                here.push(Step::Key(k.clone()));
                paths(child, here, out);
                here.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                here.push(Step::Index(i));
                paths(child, here, out);
                here.pop();
            }
        }
        _ => {}
    }
}

#[derive(Debug, Clone)]
enum Step {
    Key(String),
    Index(usize),
}

fn node_mut<'v>(v: &'v mut Value, path: &[Step]) -> Option<&'v mut Value> {
    let mut node = v;
    for step in path {
        node = match step {
            Step::Key(k) => node.get_mut(k.as_str())?,
            Step::Index(i) => node.get_mut(*i)?,
        };
    }
    Some(node)
}

/// One to three structural mutations of `seed`, or a byte-level one of its text.
pub fn mutate(seed: &Value, rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.clone();
    if rng.below(10) == 0 {
        let mut bytes = serde_json::to_vec(&v).expect("a value serialises");
        if rng.below(2) == 0 {
            bytes.truncate(rng.below(bytes.len()));
        } else {
            let at = rng.below(bytes.len());
            bytes[at] ^= 1 << rng.below(8);
        }
        return bytes;
    }
    if rng.below(5) == 0 {
        return spelling(&v, rng);
    }
    for _ in 0..=rng.below(3) {
        let mut all = Vec::new();
        paths(&v, &mut Vec::new(), &mut all);
        let path = all[rng.below(all.len())].clone();
        let Some(node) = node_mut(&mut v, &path) else {
            continue;
        };
        match rng.below(6) {
            0..=2 => *node = hostile_value(rng),
            3 => {
                if let Value::Object(m) = node {
                    if let Some(k) = m.keys().nth(rng.below(m.len())).cloned() {
                        m.remove(&k);
                    }
                }
            }
            4 => {
                if let Value::Array(a) = node {
                    if !a.is_empty() {
                        let dup = a[rng.below(a.len())].clone();
                        a.push(dup);
                    }
                } else if let Value::Object(m) = node {
                    m.insert(format!("unknown_{}", rng.below(5)), hostile_value(rng));
                }
            }
            _ => {
                // The same node's type changed to another of the shapes JSON allows.
                *node = match node.take() {
                    Value::String(s) => json!([s]),
                    Value::Array(a) => Value::Object(
                        a.into_iter()
                            .enumerate()
                            .map(|(i, x)| (i.to_string(), x))
                            .collect::<Map<_, _>>(),
                    ),
                    Value::Object(_) => json!("object"),
                    other => json!({ "value": other }),
                };
            }
        }
    }
    serde_json::to_vec(&v).expect("a value serialises")
}

/// The same value spelled otherwise, as JSON allows and `serde_json::Value` never writes: a member
/// repeated (serde keeps the last, or refuses it in a struct), a key with an escape, whitespace
/// between tokens. The webhook's one-pass reader must either read these as serde does or leave them
/// to serde; the plans compared in `run` say which.
fn spelling(seed: &Value, rng: &mut Rng) -> Vec<u8> {
    let mut v = seed.clone();
    let mut objects = Vec::new();
    paths(&v, &mut Vec::new(), &mut objects);
    objects.retain(|p| matches!(node_mut(&mut v, p), Some(Value::Object(m)) if !m.is_empty()));
    let kind = rng.below(4);
    if kind == 3 {
        // What Value cannot hold: a string cut mid-emoji (a lone surrogate) or a number out of range,
        // in place of any leaf.
        let mut leaves = Vec::new();
        paths(&v, &mut Vec::new(), &mut leaves);
        leaves.retain(|p| !p.is_empty());
        if let Some(path) = leaves.get(rng.below(leaves.len())).cloned() {
            if let Some(node) = node_mut(&mut v, &path) {
                *node = json!("__wahook_unreadable__");
            }
            let unreadable = ["\"cut \\ud83d\"", "1e400", "\"\\udc00\""][rng.below(3)];
            let text = serde_json::to_string(&v).expect("a value serialises");
            return text
                .replacen("\"__wahook_unreadable__\"", unreadable, 1)
                .into_bytes();
        }
    }
    if let (0 | 1, Some(path)) = (kind, objects.get(rng.below(objects.len())).cloned()) {
        let Some(Value::Object(m)) = node_mut(&mut v, &path) else {
            unreachable!("kept for being an object")
        };
        let key = m
            .keys()
            .nth(rng.below(m.len()))
            .cloned()
            .expect("not empty");
        let (sentinel, spelled) = if kind == 0 || !key.starts_with(|c: char| c.is_ascii()) {
            // The member again, with the same value or another.
            let again = if rng.below(2) == 0 {
                m[&key].clone()
            } else {
                hostile_value(rng)
            };
            m.insert("__wahook_repeat__".into(), again);
            (
                "\"__wahook_repeat__\"",
                serde_json::to_string(&key).expect("a key"),
            )
        } else {
            // The key with its first letter escaped: the same key to serde.
            let value = m.remove(&key).expect("present");
            m.insert("__wahook_escape__".into(), value);
            let escaped = format!("\"\\u{:04x}{}\"", key.as_bytes()[0], &key[1..]);
            ("\"__wahook_escape__\"", escaped)
        };
        let text = serde_json::to_string(&v).expect("a value serialises");
        return text.replacen(sentinel, &spelled, 1).into_bytes();
    }
    // Whitespace after a structural character.
    let mut text = serde_json::to_vec(&v).expect("a value serialises");
    let marks: Vec<usize> = (0..text.len())
        .filter(|&i| b",:[{".contains(&text[i]))
        .collect();
    if let Some(&at) = marks.get(rng.below(marks.len())) {
        let ws = [b" ".as_slice(), b"\n", b"\t ", b"\r\n  "][rng.below(4)];
        text.splice(at + 1..at + 1, ws.iter().copied());
    }
    text
}

/// [`spelling`] and hostile values on a payload as its file spells it (Meta's key order): a member
/// repeated, a key escaped, whitespace, a value `Value` cannot hold, or a hostile value, one to
/// three times.
fn spelling_in_place(text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut text = text.to_vec();
    for _ in 0..=rng.below(3) {
        // Members: a colon right after a key's closing quote (the files' keys have no escapes).
        let colons: Vec<usize> = (1..text.len())
            .filter(|&i| text[i] == b':' && text[i - 1] == b'"')
            .collect();
        let Some(&colon) = colons.get(rng.below(colons.len())) else {
            break;
        };
        let Some(key_start) = text[..colon - 1].iter().rposition(|&b| b == b'"') else {
            break;
        };
        let mut values =
            serde_json::Deserializer::from_slice(&text[colon + 1..]).into_iter::<Value>();
        if !matches!(values.next(), Some(Ok(_))) {
            break;
        }
        let value_end = colon + 1 + values.byte_offset();
        match rng.below(5) {
            0 => {
                // The member again, first with the same value or another.
                let mut again = text[key_start..colon + 1].to_vec();
                if rng.below(2) == 0 {
                    again.extend_from_slice(&text[colon + 1..value_end]);
                } else {
                    again.extend(serde_json::to_vec(&hostile_value(rng)).expect("a value"));
                }
                again.push(b',');
                text.splice(key_start..key_start, again);
            }
            1 => {
                let first = text[key_start + 1];
                if first.is_ascii() && first != b'"' {
                    let escaped = format!("\\u{first:04x}").into_bytes();
                    text.splice(key_start + 1..key_start + 2, escaped);
                }
            }
            2 => {
                let ws = [b" ".as_slice(), b"\n", b"\t ", b"\r\n  "][rng.below(4)];
                text.splice(colon + 1..colon + 1, ws.iter().copied());
            }
            3 => {
                let hostile = serde_json::to_vec(&hostile_value(rng)).expect("a value serialises");
                text.splice(colon + 1..value_end, hostile);
            }
            _ => {
                let unreadable = ["\"cut \\ud83d\"", "1e400", "\"\\udc00\""][rng.below(3)];
                text.splice(colon + 1..value_end, unreadable.bytes());
            }
        }
    }
    text
}

/// The inputs mutations start from.
pub struct Corpus {
    pub payloads: Vec<Value>,
    /// The same payloads as the files spell them: Meta's key order (metadata, contacts, then the
    /// items), which `Value` does not keep and the webhook's one pass reads differently.
    pub payload_texts: Vec<Vec<u8>>,
    pub requests: Vec<Value>,
}

impl Corpus {
    pub fn load() -> Self {
        let (payloads, payload_texts) = payload_names()
            .iter()
            .map(|n| payload(n))
            .filter_map(|text| Some((serde_json::from_slice(&text).ok()?, text)))
            .unzip();
        let requests = vec![
            json!({"v": 1, "idempotency_key": "order-1", "to": "+5215512345678", "category": "utility",
                "template": {"name": "order_shipped", "language": "es_MX",
                    "components": [{"type": "body", "parameters": [{"type": "text", "text": "A-17"}]}]},
                "not_after": "2026-12-01T10:00:00Z", "callback_data": "x", "reply_to": "wamid.HBgL"}),
            json!({"v": 1, "idempotency_key": "k2", "to": "MX.1310418412279093", "text": {"body": "Hola"},
                "category": "utility", "fallback_template": {"name": "t", "language": "en"}}),
            json!({"v": 1, "kind": "consent", "to": "+525512345678", "category": "marketing",
                "consent": "opted_in", "at": "2026-12-01T10:00:00Z", "source": "web_form", "evidence": "f"}),
        ];
        Self {
            payloads,
            payload_texts,
            requests,
        }
    }
}

/// Whether two plans read the same facts from their statuses (a status observation's equality is its
/// time and text only: the facts are a function of the text, so this checks the two readers agree).
fn same_facts(a: &Plan, b: &Plan) -> bool {
    let facts = |p: &Plan| -> Vec<Option<wahook::domain::status::StatusFacts<'static>>> {
        p.statuses
            .iter()
            .flat_map(|s| {
                s.log
                    .events()
                    .map(|(_, o)| o.facts.clone().map(|f| f.into_owned()))
            })
            .collect()
    };
    facts(a) == facts(b)
}

/// What a run found.
#[derive(Debug, Default)]
pub struct Report {
    pub cases: u64,
    pub crashes: u64,
    /// The first input that crashed, to reproduce it.
    pub first_crash: Option<Vec<u8>>,
}

/// Runs `cases` mutations from `seed`: each payload through the webhook planner, each request through
/// the send and consent parsers.
pub fn run(corpus: &Corpus, cases: u64, seed: u64) -> Report {
    // Every other payload case with the inbound number filter on, so both of its branches are compared.
    let all_numbers = InboundRules::default();
    let filtered = InboundRules {
        numbers: Some(vec![PhoneNumberId::parse("106540352242922").unwrap()]),
        ..InboundRules::default()
    };
    let now = UnixTime::from_secs(1_796_119_200);
    let mut rng = Rng::new(seed);
    let mut report = Report::default();
    for case in 0..cases {
        let payload_case = case % 4 != 3;
        let input = if payload_case {
            let which = rng.below(corpus.payloads.len());
            if rng.below(4) == 0 {
                spelling_in_place(&corpus.payload_texts[which], &mut rng)
            } else {
                mutate(&corpus.payloads[which], &mut rng)
            }
        } else {
            mutate(&corpus.requests[rng.below(corpus.requests.len())], &mut rng)
        };
        let outcome = catch_unwind(AssertUnwindSafe(|| {
            if payload_case {
                // The one-pass reading must plan exactly what the level-by-level one does.
                let rules = if case % 8 < 4 {
                    &all_numbers
                } else {
                    &filtered
                };
                // The one pass without `plan`'s net, so a panic in it is a crash here.
                let one_pass = one_pass_unguarded(&input, rules);
                let planned = plan(&input, rules);
                let other = level_by_level(&input, rules);
                one_pass.is_none_or(|p| p == other && same_facts(&p, &other))
                    && planned.counts.crashed == 0
                    && planned == other
                    && same_facts(&planned, &other)
            } else {
                let text = String::from_utf8_lossy(&input);
                let _ = SendRequest::parse(&text);
                let _ = ConsentRequest::parse(&text, now);
                true
            }
        }));
        report.cases += 1;
        if !matches!(outcome, Ok(true)) {
            report.crashes += 1;
            report.first_crash.get_or_insert(input);
        }
    }
    report
}
