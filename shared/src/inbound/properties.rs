//! Property tests of the pure inbound rules: generated deliveries (messages, statuses, opt-outs, from
//! people who appear by phone, by BSUID or by both), planned and merged in memory exactly as the
//! writer merges them in DynamoDB. Any interleaving, with any redeliveries, must end in the same state.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::plan::{plan, ContactUpdate, InboundRules, Plan};
use crate::domain::identity::{
    apply_to_snapshot, resolve, ContactRecord, ContactSnapshot, ResolveStep,
};
use crate::domain::ids::{ContactKey, Wamid};
use crate::domain::status::StatusLog;

const NUMBER: &str = "106540352242922";
const PEOPLE: [(&str, &str); 3] = [
    ("5215512345678", "MX.1310418412279093"),
    ("5511987654321", "BR.1502847362910475"),
    ("14155550123", "US.99887766554433"),
];

/// How a delivery names its person.
#[derive(Debug, Clone, Copy)]
enum Naming {
    Phone,
    Bsuid,
    Both,
}

fn identity_fields(person: usize, naming: Naming, phone_key: &str, bsuid_key: &str) -> String {
    let (phone, bsuid) = PEOPLE[person];
    match naming {
        Naming::Phone => format!(r#""{phone_key}":"{phone}""#),
        Naming::Bsuid => format!(r#""{bsuid_key}":"{bsuid}""#),
        Naming::Both => format!(r#""{phone_key}":"{phone}","{bsuid_key}":"{bsuid}""#),
    }
}

fn wrap(field: &str, inner: &str) -> String {
    format!(
        r#"{{"object":"whatsapp_business_account","entry":[{{"id":"1","changes":[{{"value":{{"metadata":{{"phone_number_id":"{NUMBER}"}},{inner}}},"field":"{field}"}}]}}]}}"#
    )
}

/// One generated delivery, as Meta would send it.
fn delivery() -> impl Strategy<Value = String> {
    let person = 0..PEOPLE.len();
    let naming = prop_oneof![Just(Naming::Phone), Just(Naming::Bsuid), Just(Naming::Both)];
    let ts = 1_000i64..1_060;
    // A wamid names exactly one message, so the id is a function of everything in it.
    let text = (person.clone(), naming.clone(), ts.clone(), prop::sample::select(vec!["hi", "STOP", "Start", "baja", "ok"]))
        .prop_map(|(p, n, ts, body)| {
            let who = identity_fields(p, n, "from", "from_user_id");
            wrap(
                "messages",
                &format!(r#""messages":[{{{who},"id":"wamid.in{p}.{ts}.{body}.{n:?}","timestamp":"{ts}","type":"text","text":{{"body":"{body}"}}}}]"#),
            )
        });
    let button = (person.clone(), naming.clone(), ts.clone()).prop_map(|(p, n, ts)| {
        let who = identity_fields(p, n, "from", "from_user_id");
        wrap(
            "messages",
            &format!(r#""messages":[{{{who},"id":"wamid.btn{p}.{ts}.{n:?}","timestamp":"{ts}","type":"button","button":{{"text":"Stop promotions","payload":"x"}}}}]"#),
        )
    });
    let status = (
        person.clone(),
        naming.clone(),
        ts.clone(),
        0..3usize,
        prop::sample::select(vec!["sent", "delivered", "read", "played", "failed", "deleted"]),
        any::<bool>(),
    )
        .prop_map(|(p, n, ts, w, st, stopped)| {
            let who = identity_fields(p, n, "recipient_id", "recipient_user_id");
            let errors = if st == "failed" && stopped {
                r#","errors":[{"code":131050,"title":"stopped marketing"}]"#
            } else {
                ""
            };
            // Each outbound message belongs to one person.
            wrap(
                "messages",
                &format!(r#""statuses":[{{"id":"wamid.out{p}.{w}","status":"{st}","timestamp":"{ts}",{who}{errors}}}]"#),
            )
        });
    let preference = (person, naming, ts, any::<bool>()).prop_map(|(p, n, ts, stop)| {
        let who = identity_fields(p, n, "wa_id", "user_id");
        let value = if stop { "stop" } else { "resume" };
        wrap(
            "user_preferences",
            &format!(r#""user_preferences":[{{{who},"category":"marketing_messages","value":"{value}","timestamp":"{ts}"}}]"#),
        )
    });
    prop_oneof![4 => text, 1 => button, 4 => status, 2 => preference]
}

/// What the stores would hold, minus versions.
#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    messages: BTreeMap<Wamid, String>,
    statuses: BTreeMap<Wamid, StatusLog<'static>>,
    contacts: ContactSnapshot,
    events: BTreeSet<(String, Vec<u8>)>,
}

impl Model {
    fn apply(&mut self, plan: &Plan<'_>) {
        for m in &plan.messages {
            self.messages
                .entry(m.wamid.clone())
                .or_insert_with(|| m.raw.to_owned());
        }
        for s in &plan.statuses {
            self.statuses
                .entry(s.wamid.clone())
                .or_default()
                .join(&s.log.clone().into_owned());
        }
        for c in &plan.contacts {
            self.settle(c);
        }
        for e in &plan.events {
            self.events.insert((e.kind.to_string(), e.raw.to_vec()));
        }
    }

    fn settle(&mut self, update: &ContactUpdate) {
        for _ in 0..16 {
            match resolve(&update.number, &update.user, &update.delta, &self.contacts) {
                ResolveStep::Read(keys) => {
                    for k in keys {
                        self.contacts.entry(k).or_insert(None);
                    }
                }
                ResolveStep::Write(w) => return apply_to_snapshot(&mut self.contacts, &w),
            }
        }
        panic!("resolution did not settle");
    }

    fn records(&self) -> BTreeMap<ContactKey, ContactRecord> {
        self.contacts
            .iter()
            .filter_map(|(k, r)| r.as_ref().map(|r| (k.clone(), r.record.clone())))
            .collect()
    }
}

fn run(deliveries: &[String], order: &[usize]) -> Model {
    let rules = InboundRules::default();
    let mut model = Model::default();
    for &i in order {
        model.apply(&plan(deliveries[i].as_bytes(), &rules));
    }
    model
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn interleavings_and_redeliveries_end_in_the_same_state(
        (deliveries, order) in prop::collection::vec(delivery(), 1..14).prop_flat_map(|d| {
            let n = d.len();
            let order = prop::collection::vec(0..n, n..n * 2).prop_map(move |mut extra| {
                // Every delivery at least once, in a shuffled order, plus redeliveries anywhere.
                extra.extend(0..n);
                extra
            }).prop_shuffle();
            (Just(d), order)
        })
    ) {
        let reference = run(&deliveries, &(0..deliveries.len()).collect::<Vec<_>>());
        let shuffled = run(&deliveries, &order);
        prop_assert_eq!(&shuffled.messages, &reference.messages);
        prop_assert_eq!(&shuffled.statuses, &reference.statuses);
        prop_assert_eq!(&shuffled.events, &reference.events);
        prop_assert_eq!(shuffled.records(), reference.records());
    }

    #[test]
    fn a_person_is_one_contact_however_they_are_named(
        deliveries in prop::collection::vec(delivery(), 1..14)
    ) {
        // Once a delivery has shown a person's phone and BSUID together, every identity of theirs
        // leads to a single record holding state.
        let model = run(&deliveries, &(0..deliveries.len()).collect::<Vec<_>>());
        let records = model.records();
        for (phone, bsuid) in PEOPLE {
            let phone_key = ContactKey::from_stored(format!("{NUMBER}#{phone}"));
            let bsuid_key = ContactKey::from_stored(format!("{NUMBER}#{bsuid}"));
            let seen_together = matches!(records.get(&phone_key), Some(ContactRecord::Alias(_)));
            if seen_together {
                prop_assert_eq!(records.get(&phone_key), Some(&ContactRecord::Alias(bsuid_key.clone())));
                prop_assert!(matches!(records.get(&bsuid_key), Some(ContactRecord::Primary(_))));
            }
        }
    }
}
