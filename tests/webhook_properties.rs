//! Property: any interleaving of a set of deliveries, with any of them redelivered, leaves exactly the
//! same stored state in DynamoDB (moto) as delivering each once in order (DESIGN rule 4).
//!
//! Each case builds fresh tables and goes through the real handler, so cases are few; the pure planner
//! and merge rules get thousands of cases in `shared/src/inbound/properties.rs`.

use std::sync::OnceLock;

use proptest::prelude::*;
use wahook_tests::fixtures::{build, payload};
use wahook_tests::{Harness, StoredState};

const T: i64 = 1_795_400_000;
const ANA_PHONE: &str = "5215512345678";
const ANA_BSUID: &str = "MX.1310418412279093";
const JOAO: &str = "5511987654321";
const OUT: &str = "wamid.HBgNNTIxNTUxMjM0NTY3OBUCABEYEjQ4RDVCRkNCNTQ1QjU3NEE1RQA=";

fn deliveries() -> Vec<Vec<u8>> {
    vec![
        payload("text-hola"),
        payload("statuses-sent-delivered-read"),
        payload("status-failed-131050"),
        payload("user-preferences-stop"),
        payload("button-stop-promotions"),
        payload("batch-mixed"),
        payload("template-status-update"),
        build::envelope(vec![build::text(
            "wamid.pp1",
            Some(ANA_PHONE),
            None,
            T - 50,
            "STOP",
        )]),
        build::envelope(vec![build::text(
            "wamid.pp2",
            None,
            Some(ANA_BSUID),
            T + 5,
            "start",
        )]),
        build::envelope(vec![build::statuses(
            ANA_PHONE,
            &[(OUT, "played", T + 401), (OUT, "failed", T + 301)],
        )]),
        build::preference(JOAO, false, T + 550),
        build::envelope(vec![build::text(
            "wamid.pp3",
            Some(JOAO),
            None,
            T + 560,
            "oi de novo",
        )]),
    ]
}

async fn run(order: &[usize], pool: &[Vec<u8>], name: &str) -> StoredState {
    let h = Harness::new(name).await;
    for &i in order {
        let reply = h.deliver(&pool[i]).await;
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    h.state().await
}

/// The state after delivering each payload once, in order: computed once for all cases.
fn reference(rt: &tokio::runtime::Runtime, pool: &[Vec<u8>]) -> &'static StoredState {
    static REFERENCE: OnceLock<StoredState> = OnceLock::new();
    REFERENCE
        .get_or_init(|| rt.block_on(run(&(0..pool.len()).collect::<Vec<_>>(), pool, "prop-ref")))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, ..ProptestConfig::default() })]

    #[test]
    fn any_interleaving_with_redeliveries_stores_the_same_state(
        order in Just((0..12).collect::<Vec<usize>>()).prop_shuffle(),
        repeats in proptest::collection::vec(0usize..12, 0..6),
    ) {
        let pool = deliveries();
        let rt = runtime();
        let reference = reference(&rt, &pool);
        let mut shuffled = order.clone();
        // Redeliveries land anywhere, before or after the first delivery of the same payload.
        for (n, r) in repeats.iter().enumerate() {
            shuffled.insert((n * 7 + r) % (shuffled.len() + 1), *r);
        }
        let got = rt.block_on(run(&shuffled, &pool, "prop"));
        prop_assert!(&got == reference, "order {:?}:\n{}", shuffled, got.diff(reference));
    }
}
