//! Start-up configuration, as an operator meets it: defaults, and every mistake named.

use super::*;
use crate::domain::preferences::Category;
use aws_config::{BehaviorVersion, SdkConfig};

fn resolver() -> SecretResolver {
    // Never reached by these tests: every secret here comes from the environment.
    SecretResolver::new(
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .build(),
    )
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(f)
}

fn base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("WAHOOK_APP_SECRET", "app-secret"),
        ("WAHOOK_VERIFY_TOKEN", "verify-token"),
    ]
}

#[test]
fn a_minimal_local_configuration_loads_with_defaults() {
    let cfg = block(WebhookConfig::load(&Env::from_pairs(base()), &resolver())).unwrap();
    assert_eq!(cfg.app_secrets.len(), 1);
    assert_eq!(cfg.storage.tables.messages, "wahook-messages");
    assert_eq!(cfg.storage.retention_days, DEFAULT_RETENTION_DAYS);
    assert_eq!(cfg.write_concurrency, 32);
    let shown = format!("{cfg:?}");
    assert!(
        !shown.contains("app-secret") && !shown.contains("verify-token"),
        "{shown}"
    );
}

#[test]
fn a_missing_secret_names_every_way_to_set_it() {
    let env = Env::from_pairs([("WAHOOK_VERIFY_TOKEN", "t")]);
    let err = block(WebhookConfig::load(&env, &resolver()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("WAHOOK_APP_SECRET is not set"), "{err}");
    assert!(
        err.contains("WAHOOK_APP_SECRET_ARN") && err.contains("WAHOOK_APP_SECRET_PARAM"),
        "{err}"
    );
}

#[test]
fn a_blank_secret_fails_start_up() {
    let env = Env::from_pairs([("WAHOOK_APP_SECRET", "   "), ("WAHOOK_VERIFY_TOKEN", "t")]);
    let err = block(WebhookConfig::load(&env, &resolver()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("WAHOOK_APP_SECRET is blank"), "{err}");
}

#[test]
fn two_sources_for_one_secret_is_an_error() {
    let env = Env::from_pairs([
        ("WAHOOK_APP_SECRET", "a"),
        (
            "WAHOOK_APP_SECRET_ARN",
            "arn:aws:secretsmanager:eu-west-1:1:secret:x",
        ),
        ("WAHOOK_VERIFY_TOKEN", "t"),
    ]);
    let err = block(WebhookConfig::load(&env, &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_APP_SECRET, WAHOOK_APP_SECRET_ARN are all set"),
        "{err}"
    );
}

#[test]
fn the_previous_app_secret_is_used_during_rotation() {
    let mut pairs = base();
    pairs.push(("WAHOOK_APP_SECRET_PREVIOUS", "old-secret"));
    let cfg = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
    assert_eq!(cfg.app_secrets.len(), 2);
    assert_eq!(cfg.app_secrets[1].expose(), "old-secret");
}

#[test]
fn retention_below_meta_redelivery_is_refused() {
    let mut pairs = base();
    pairs.push(("WAHOOK_RETENTION_DAYS", "7"));
    let err = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_RETENTION_DAYS=\"7\"") && err.contains("from 8"),
        "{err}"
    );
}

fn sender_base() -> Vec<(&'static str, &'static str)> {
    vec![
        ("WAHOOK_ACCESS_TOKEN", "EAAG-token"),
        (
            "WAHOOK_SENDS_QUEUE_URL",
            "http://127.0.0.1:5000/123456789012/sends",
        ),
        (
            "WAHOOK_SENDS_DLQ_URL",
            "http://127.0.0.1:5000/123456789012/sends-dlq",
        ),
    ]
}

#[test]
fn a_minimal_sender_configuration_loads_with_defaults() {
    let cfg = block(SenderConfig::load(
        &Env::from_pairs(sender_base()),
        &resolver(),
    ))
    .unwrap();
    assert_eq!(cfg.graph.api_version, "v25.0");
    assert_eq!(cfg.graph.base_url, "https://graph.facebook.com");
    assert_eq!(
        (cfg.rate_per_second, cfg.burst, cfg.settings.concurrency),
        (32.0, 5, 10),
        "80 mps x 0.8 headroom / 2 invocations"
    );
    assert_eq!(cfg.settings.policy.window_margin_secs, 600);
    assert!(cfg.settings.default_from.is_none());
    assert!(
        cfg.settings.allowed_from.is_empty(),
        "no default: any number"
    );
    assert_eq!(cfg.settings.max_receive_count, 10);
    assert_eq!(cfg.deadlines.function_timeout.as_secs(), 30);
    assert!(!format!("{cfg:?}").contains("EAAG"));
}

#[test]
fn the_allowed_sender_numbers_default_to_the_default_number_and_must_include_it() {
    let mut pairs = sender_base();
    pairs.push(("WAHOOK_DEFAULT_PHONE_NUMBER_ID", "106540352242922"));
    let cfg = block(SenderConfig::load(
        &Env::from_pairs(pairs.clone()),
        &resolver(),
    ))
    .unwrap();
    assert_eq!(
        cfg.settings
            .allowed_from
            .iter()
            .map(|n| n.as_str())
            .collect::<Vec<_>>(),
        ["106540352242922"]
    );
    pairs.push(("WAHOOK_ALLOWED_PHONE_NUMBER_IDS", "106540352242923"));
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("includes WAHOOK_DEFAULT_PHONE_NUMBER_ID"),
        "{err}"
    );
}

#[test]
fn the_inbound_number_filter_is_off_by_default_and_needs_our_numbers_when_on() {
    let load = |extra: &[(&'static str, &'static str)]| {
        let mut pairs = base();
        pairs.extend_from_slice(extra);
        block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver()))
    };
    let ours = |cfg: WebhookConfig| {
        cfg.inbound_numbers
            .map(|ns| ns.iter().map(|n| n.as_str().to_owned()).collect::<Vec<_>>())
    };
    assert_eq!(ours(load(&[]).unwrap()), None, "off unless asked");
    let ids = (
        "WAHOOK_ALLOWED_PHONE_NUMBER_IDS",
        "106540352242922, 106540352242923",
    );
    assert_eq!(
        ours(load(&[ids]).unwrap()),
        None,
        "the list alone does not filter"
    );
    assert_eq!(
        ours(load(&[ids, ("WAHOOK_INBOUND_NUMBER_FILTER", "on")]).unwrap()),
        Some(vec![
            "106540352242922".to_owned(),
            "106540352242923".to_owned()
        ])
    );
    assert_eq!(
        ours(
            load(&[
                ("WAHOOK_DEFAULT_PHONE_NUMBER_ID", "106540352242924"),
                ("WAHOOK_INBOUND_NUMBER_FILTER", "on")
            ])
            .unwrap()
        ),
        Some(vec!["106540352242924".to_owned()]),
        "the default number stands for the list"
    );
    let err = load(&[("WAHOOK_INBOUND_NUMBER_FILTER", "on")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("WAHOOK_ALLOWED_PHONE_NUMBER_IDS"), "{err}");
    let err = load(&[("WAHOOK_INBOUND_NUMBER_FILTER", "yes")])
        .unwrap_err()
        .to_string();
    assert!(err.contains("on or off"), "{err}");
}

#[test]
fn sender_settings_are_checked_against_each_other() {
    let mut pairs = sender_base();
    pairs.push(("WAHOOK_GRAPH_TIMEOUT_MS", "8000"));
    pairs.push(("WAHOOK_LEASE_SECONDS", "9"));
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_LEASE_SECONDS") && err.contains("8000 ms"),
        "{err}"
    );

    // A Graph call that could outlast the function is refused at start-up.
    let mut pairs = sender_base();
    pairs.push(("WAHOOK_GRAPH_TIMEOUT_MS", "30000"));
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_GRAPH_TIMEOUT_MS") && err.contains("function timeout"),
        "{err}"
    );

    // The token goes over TLS, or to this machine.
    let mut pairs = sender_base();
    pairs.push(("WAHOOK_GRAPH_BASE_URL", "http://graph.example.com"));
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("plain http"), "{err}");

    let mut pairs = sender_base();
    pairs.push(("WAHOOK_GRAPH_API_VERSION", "25"));
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("like v25.0"), "{err}");

    let pairs = vec![("WAHOOK_ACCESS_TOKEN", "t")];
    let err = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_SENDS_QUEUE_URL") && err.contains("required"),
        "{err}"
    );

    let mut pairs = sender_base();
    pairs.push(("WAHOOK_SEND_RATE_PER_SECOND", "17.5"));
    pairs.push(("WAHOOK_REQUIRE_CONSENT", "marketing"));
    let cfg = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
    assert_eq!(cfg.rate_per_second, 17.5, "an explicit rate wins");
    let mut pairs = sender_base();
    pairs.push(("WAHOOK_NUMBER_RATE_LIMIT", "1000"));
    pairs.push(("WAHOOK_RATE_HEADROOM", "0.5"));
    pairs.push(("WAHOOK_SENDER_MAX_CONCURRENCY", "5"));
    let derived = block(SenderConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
    assert_eq!(derived.rate_per_second, 100.0);
    assert_eq!(
        cfg.settings.policy.consent_required,
        vec![Category::Marketing]
    );
}

#[test]
fn keywords_and_categories_are_configurable() {
    let mut pairs = base();
    pairs.push(("WAHOOK_STOP_KEYWORDS", "halt, ARRET"));
    pairs.push(("WAHOOK_START_KEYWORDS", "go"));
    pairs.push(("WAHOOK_STOP_KEYWORD_CATEGORIES", "marketing"));
    let cfg = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver())).unwrap();
    use crate::domain::keywords::KeywordIntent;
    assert_eq!(
        cfg.keywords.classify_text("Arrêt"),
        Some(KeywordIntent::Stop)
    );
    assert_eq!(cfg.keywords.classify_text("stop"), None);
    assert_eq!(cfg.keywords.keyword_categories(), &[Category::Marketing]);

    let mut pairs = base();
    pairs.push(("WAHOOK_STOP_KEYWORD_CATEGORIES", "marketing,promos"));
    let err = block(WebhookConfig::load(&Env::from_pairs(pairs), &resolver()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"promos\"") && err.contains("expected one of"),
        "{err}"
    );
}

#[test]
fn the_marketing_gates_load_with_their_defaults_and_name_a_bad_value() {
    use crate::domain::template::MarketingRoute;
    let cfg = block(SenderConfig::load(
        &Env::from_pairs(sender_base()),
        &resolver(),
    ))
    .unwrap();
    let t = &cfg.settings.templates;
    assert_eq!(
        (t.marketing_route, t.product_policy.as_deref()),
        (MarketingRoute::Auto, None)
    );
    assert_eq!(cfg.settings.marketing_cap, None, "no cap by default");

    let mut set = sender_base();
    set.extend([
        ("WAHOOK_WABA_ID", "102290129340398"),
        ("WAHOOK_MARKETING_MESSAGES", "ON"),
        ("WAHOOK_MARKETING_PRODUCT_POLICY", "strict"),
        ("WAHOOK_MARKETING_CAP", "2"),
        ("WAHOOK_MARKETING_CAP_DAYS", "7"),
    ]);
    let cfg = block(SenderConfig::load(&Env::from_pairs(set), &resolver())).unwrap();
    let t = &cfg.settings.templates;
    assert_eq!(
        (t.marketing_route, t.product_policy.as_deref()),
        (MarketingRoute::On, Some("STRICT"))
    );
    assert_eq!(
        cfg.settings.marketing_cap,
        Some(crate::domain::frequency::FrequencyCap {
            max: 2,
            window_days: 7
        })
    );

    for (var, value) in [
        ("WAHOOK_MARKETING_MESSAGES", "yes"),
        // Routed by Meta's category: on needs the registry's account.
        ("WAHOOK_MARKETING_MESSAGES", "on"),
        ("WAHOOK_MARKETING_PRODUCT_POLICY", "LOOSE"),
        ("WAHOOK_MARKETING_CAP", "101"),
        ("WAHOOK_MARKETING_CAP_DAYS", "0"),
    ] {
        let mut bad = sender_base();
        bad.push((var, value));
        let err = block(SenderConfig::load(&Env::from_pairs(bad), &resolver()))
            .unwrap_err()
            .to_string();
        assert!(err.contains(var), "{err}");
    }
}
