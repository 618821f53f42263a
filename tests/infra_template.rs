//! `infra/template.yaml` must deploy what the code expects. Two checks:
//! - statically: its tables (keys, indexes, TTL), queue and DLQ wiring, functions (runtime, handler,
//!   build output) and environment variables agree with the code's definitions;
//! - after the deploy rehearsal into moto's CloudFormation (`scripts/test.sh` runs it and sets
//!   `WAHOOK_REHEARSAL_REPORT`): each deployed function's configuration loads from its environment as
//!   in Lambda, and the tables and queues it names are the ones the code works against.

use std::collections::{BTreeMap, BTreeSet};

use aws_config::BehaviorVersion;
use serde_norway::Value;
use wahook::config::{
    Env, MediaConfig, PublisherConfig, SecretResolver, SenderConfig, TemplateSyncConfig,
    WebhookConfig,
};
use wahook::store::tables::{AttrKind, TableDef, ALL_TABLES, FIGURES, STREAMED_TABLES};

fn template() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../infra/template.yaml");
    serde_norway::from_str(&std::fs::read_to_string(path).unwrap()).expect("the template is YAML")
}

/// A value with any CloudFormation tag (`!Ref`, `!Sub`…) taken off.
fn untag(v: &Value) -> &Value {
    match v {
        Value::Tagged(t) => &t.value,
        other => other,
    }
}

fn tag_of(v: &Value) -> Option<String> {
    match v {
        Value::Tagged(t) => Some(t.tag.to_string()),
        _ => None,
    }
}

fn s(v: &Value) -> String {
    match untag(v) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

fn resources(t: &Value) -> Vec<(String, &Value)> {
    t["Resources"]
        .as_mapping()
        .unwrap()
        .iter()
        .map(|(k, v)| (s(k), v))
        .collect()
}

fn resource<'t>(t: &'t Value, name: &str) -> &'t Value {
    &t["Resources"][name]
}

fn table_resource<'t>(t: &'t Value, def: &TableDef) -> (String, &'t Value) {
    let wanted = format!("${{AWS::StackName}}-{}", def.logical);
    resources(t)
        .into_iter()
        .find(|(_, r)| {
            r["Type"] == "AWS::DynamoDB::Table" && s(&r["Properties"]["TableName"]) == wanted
        })
        .unwrap_or_else(|| panic!("no table named {wanted} in the template"))
}

/// (index name, key schema, projection type)
type Index = (String, Vec<(String, String)>, String);

fn key_schema(v: &Value) -> Vec<(String, String)> {
    v.as_sequence()
        .unwrap()
        .iter()
        .map(|k| (s(&k["AttributeName"]), s(&k["KeyType"])))
        .collect()
}

fn expected_keys(pk: &str, sk: Option<&str>) -> Vec<(String, String)> {
    std::iter::once((pk.to_owned(), "HASH".to_owned()))
        .chain(sk.map(|k| (k.to_owned(), "RANGE".to_owned())))
        .collect()
}

#[test]
fn every_table_has_exactly_the_keys_indexes_and_ttl_the_code_defines() {
    let t = template();
    for def in &ALL_TABLES {
        let (name, r) = table_resource(&t, def);
        let p = &r["Properties"];
        assert_eq!(
            key_schema(&p["KeySchema"]),
            expected_keys(def.partition_key.name, def.sort_key.map(|k| k.name)),
            "{name} keys"
        );
        let mut expected_attrs: BTreeMap<String, String> = BTreeMap::new();
        for k in std::iter::once(def.partition_key)
            .chain(def.sort_key)
            .chain(
                def.indexes
                    .iter()
                    .flat_map(|i| std::iter::once(i.partition_key).chain(i.sort_key)),
            )
        {
            expected_attrs.insert(k.name.into(), k.kind.as_str().into());
        }
        let attrs: BTreeMap<String, String> = p["AttributeDefinitions"]
            .as_sequence()
            .unwrap()
            .iter()
            .map(|a| (s(&a["AttributeName"]), s(&a["AttributeType"])))
            .collect();
        assert_eq!(attrs, expected_attrs, "{name} attribute definitions");
        let indexes: Vec<Index> = p["GlobalSecondaryIndexes"]
            .as_sequence()
            .map(|seq| {
                seq.iter()
                    .map(|g| {
                        (
                            s(&g["IndexName"]),
                            key_schema(&g["KeySchema"]),
                            s(&g["Projection"]["ProjectionType"]),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        let expected_indexes: Vec<Index> = def
            .indexes
            .iter()
            .map(|i| {
                (
                    i.name.to_owned(),
                    expected_keys(i.partition_key.name, i.sort_key.map(|k| k.name)),
                    "ALL".to_owned(),
                )
            })
            .collect();
        assert_eq!(indexes, expected_indexes, "{name} indexes");
        match def.ttl_attribute {
            Some(ttl) => {
                assert_eq!(
                    s(&p["TimeToLiveSpecification"]["AttributeName"]),
                    ttl,
                    "{name} TTL"
                );
                assert_eq!(
                    s(&p["TimeToLiveSpecification"]["Enabled"]),
                    "true",
                    "{name} TTL"
                );
            }
            None => assert!(
                p.get("TimeToLiveSpecification").is_none(),
                "{name} must not expire items"
            ),
        }
        assert_eq!(s(&p["BillingMode"]), "PAY_PER_REQUEST", "{name}");
        assert_eq!(
            s(&p["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"]),
            "true",
            "{name}"
        );
        assert_eq!(s(&p["SSESpecification"]["SSEEnabled"]), "true", "{name}");
        assert!(
            p.get("DeletionProtectionEnabled").is_some(),
            "{name} deletion protection is a parameter"
        );
    }
}

#[test]
fn functions_run_the_binaries_cargo_lambda_builds() {
    let t = template();
    let globals = &t["Globals"]["Function"];
    assert_eq!(s(&globals["Runtime"]), "provided.al2023");
    assert_eq!(s(&globals["Handler"]), "bootstrap");
    assert_eq!(globals["Architectures"][0], "arm64");
    // The [[bin]] names of functions/* (their startup tests run them).
    for (function, bin) in [
        ("WebhookFunction", "webhook"),
        ("SenderFunction", "sender"),
        ("TemplateSyncFunction", "template-sync"),
        ("MediaFunction", "media"),
        ("PublisherFunction", "publisher"),
    ] {
        let p = &resource(&t, function)["Properties"];
        assert_eq!(
            s(&p["CodeUri"]),
            format!("../target/lambda/{bin}/"),
            "{function}"
        );
        assert_eq!(s(&p["LoggingConfig"]["LogFormat"]), "JSON", "{function}");
        assert!(
            p.get("LoggingConfig")
                .and_then(|l| l.get("LogGroup"))
                .is_some(),
            "{function} log group with retention"
        );
    }
}

fn environment(t: &Value, function: &str) -> BTreeMap<String, Value> {
    let mut env = BTreeMap::new();
    for vars in [
        &t["Globals"]["Function"]["Environment"]["Variables"],
        &resource(t, function)["Properties"]["Environment"]["Variables"],
    ] {
        if let Some(map) = vars.as_mapping() {
            for (k, v) in map {
                env.insert(s(k), v.clone());
            }
        }
    }
    env
}

#[derive(Clone, Copy)]
enum Loader {
    Webhook,
    Sender,
    TemplateSync,
    Media,
    Publisher,
}

async fn names_the_loader_reads(loader: Loader) -> BTreeSet<String> {
    let sdk = aws_config::SdkConfig::builder()
        .behavior_version(BehaviorVersion::latest())
        .build();
    let env = Env::from_pairs([
        ("WAHOOK_APP_SECRET", "x"),
        ("WAHOOK_VERIFY_TOKEN", "x"),
        ("WAHOOK_ACCESS_TOKEN", "x"),
        ("WAHOOK_SENDS_QUEUE_URL", "http://q"),
        ("WAHOOK_SENDS_DLQ_URL", "http://d"),
        ("WAHOOK_WABA_ID", "1"),
        ("WAHOOK_MEDIA_BUCKET", "b"),
    ]);
    let resolver = SecretResolver::new(sdk);
    match loader {
        Loader::Sender => drop(SenderConfig::load(&env, &resolver).await.unwrap()),
        Loader::Webhook => drop(WebhookConfig::load(&env, &resolver).await.unwrap()),
        Loader::TemplateSync => drop(TemplateSyncConfig::load(&env, &resolver).await.unwrap()),
        Loader::Media => drop(MediaConfig::load(&env, &resolver).await.unwrap()),
        Loader::Publisher => drop(PublisherConfig::load(&env).unwrap()),
    }
    env.names_read()
}

#[tokio::test]
async fn the_template_sets_only_variables_the_code_reads_and_all_it_needs() {
    let t = template();
    for (function, loader, required) in [
        (
            "WebhookFunction",
            Loader::Webhook,
            &[
                "WAHOOK_APP_SECRET_ARN",
                "WAHOOK_VERIFY_TOKEN_ARN",
                "WAHOOK_CONTACTS_TABLE",
                "WAHOOK_MESSAGES_TABLE",
                "WAHOOK_EVENTS_TABLE",
            ][..],
        ),
        (
            "SenderFunction",
            Loader::Sender,
            &[
                "WAHOOK_ACCESS_TOKEN_ARN",
                "WAHOOK_SENDS_QUEUE_URL",
                "WAHOOK_SENDS_DLQ_URL",
                "WAHOOK_CONTACTS_TABLE",
                "WAHOOK_MESSAGES_TABLE",
                "WAHOOK_SENDS_TABLE",
            ][..],
        ),
        (
            "TemplateSyncFunction",
            Loader::TemplateSync,
            &[
                "WAHOOK_ACCESS_TOKEN_ARN",
                "WAHOOK_WABA_ID",
                "WAHOOK_TEMPLATES_TABLE",
                "WAHOOK_FUNCTION_TIMEOUT_SECONDS",
            ][..],
        ),
        (
            "MediaFunction",
            Loader::Media,
            &[
                "WAHOOK_ACCESS_TOKEN_ARN",
                "WAHOOK_MEDIA_BUCKET",
                "WAHOOK_MESSAGES_TABLE",
                "WAHOOK_FUNCTION_TIMEOUT_SECONDS",
            ][..],
        ),
        (
            "PublisherFunction",
            Loader::Publisher,
            // Every table: a stream record is placed by its table's name.
            &[
                "WAHOOK_EVENT_BUS_NAME",
                "WAHOOK_CONTACTS_TABLE",
                "WAHOOK_MESSAGES_TABLE",
                "WAHOOK_EVENTS_TABLE",
                "WAHOOK_SENDS_TABLE",
                "WAHOOK_TEMPLATES_TABLE",
                "WAHOOK_FIGURES_TABLE",
                "WAHOOK_FUNCTION_TIMEOUT_SECONDS",
            ][..],
        ),
    ] {
        let env = environment(&t, function);
        let read = names_the_loader_reads(loader).await;
        let unknown: Vec<&String> = env
            .keys()
            .filter(|k| !read.contains(*k) && *k != "WAHOOK_METRICS")
            .collect();
        assert!(
            unknown.is_empty(),
            "{function} sets variables its code never reads: {unknown:?}"
        );
        for r in required {
            assert!(env.contains_key(*r), "{function} must set {r}");
        }
        // Table variables point at the tables of the same names.
        for (var, table) in [
            ("WAHOOK_CONTACTS_TABLE", "ContactsTable"),
            ("WAHOOK_MESSAGES_TABLE", "MessagesTable"),
            ("WAHOOK_EVENTS_TABLE", "EventsTable"),
            ("WAHOOK_SENDS_TABLE", "SendsTable"),
            ("WAHOOK_TEMPLATES_TABLE", "TemplatesTable"),
            ("WAHOOK_FIGURES_TABLE", "FiguresTable"),
        ] {
            if let Some(v) = env.get(var) {
                assert_eq!(
                    (tag_of(v).as_deref(), s(v).as_str()),
                    (Some("!Ref"), table),
                    "{function} {var}"
                );
            }
        }
    }
}

#[test]
fn the_sender_drains_the_sends_queue_which_dead_letters_to_the_dlq() {
    let t = template();
    let sender = &resource(&t, "SenderFunction")["Properties"];
    let event = &sender["Events"]["Sends"];
    assert_eq!(s(&event["Type"]), "SQS");
    assert_eq!(s(&event["Properties"]["Queue"]), "SendsQueue.Arn");
    let types: Vec<String> = event["Properties"]["FunctionResponseTypes"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(s)
        .collect();
    assert_eq!(
        types,
        ["ReportBatchItemFailures"],
        "one record's failure must not fail its neighbours"
    );
    for p in ["BatchSize", "MaximumBatchingWindowInSeconds"] {
        assert_eq!(
            tag_of(&event["Properties"][p]).as_deref(),
            Some("!Ref"),
            "{p} is a parameter"
        );
    }
    assert_eq!(
        tag_of(&event["Properties"]["ScalingConfig"]["MaximumConcurrency"]).as_deref(),
        Some("!Ref")
    );
    let env = environment(&t, "SenderFunction");
    assert_eq!(s(&env["WAHOOK_SENDS_QUEUE_URL"]), "SendsQueue");
    assert_eq!(s(&env["WAHOOK_SENDS_DLQ_URL"]), "SendsDeadLetterQueue");

    let queue = &resource(&t, "SendsQueue")["Properties"];
    assert_eq!(
        s(&queue["RedrivePolicy"]["deadLetterTargetArn"]),
        "SendsDeadLetterQueue.Arn"
    );
    assert_eq!(
        tag_of(&queue["RedrivePolicy"]["maxReceiveCount"]).as_deref(),
        Some("!Ref")
    );
    for q in ["SendsQueue", "SendsDeadLetterQueue"] {
        assert_eq!(
            s(&resource(&t, q)["Properties"]["SqsManagedSseEnabled"]),
            "true",
            "{q} SSE"
        );
    }
    let timeout: i64 = s(&sender["Timeout"]).parse().unwrap();
    let visibility: i64 = s(&queue["VisibilityTimeout"]).parse().unwrap();
    // The local stack creates the queue from the same definition.
    let def = wahook::outbound::queue::SENDS_QUEUE;
    assert_eq!(
        visibility,
        i64::from(def.visibility_timeout_secs),
        "VisibilityTimeout vs SENDS_QUEUE"
    );
    assert_eq!(
        s(&t["Parameters"]["DlqMaxReceiveCount"]["Default"]),
        def.max_receive_count.to_string()
    );
    for q in ["SendsQueue", "SendsDeadLetterQueue"] {
        assert_eq!(
            s(&resource(&t, q)["Properties"]["MessageRetentionPeriod"]),
            def.retention_secs.to_string(),
            "{q} retention"
        );
    }
    let window: i64 = s(&t["Parameters"]["SenderBatchingWindowSeconds"]["MaxValue"])
        .parse()
        .unwrap();
    assert!(
        visibility >= 6 * timeout + window,
        "visibility {visibility} s < 6 x function timeout {timeout} s + batching window {window} s"
    );
    // The code checks its deadlines against the timeout the template gives it.
    assert_eq!(
        s(&env["WAHOOK_FUNCTION_TIMEOUT_SECONDS"]),
        timeout.to_string()
    );
    assert_eq!(
        s(&env["WAHOOK_MAX_RECEIVE_COUNT"]),
        "DlqMaxReceiveCount",
        "the sender dead-letters on the same receive count SQS would"
    );
    // Pacing is derived in the code from the template's inputs, with the same defaults.
    use wahook::config::sender::{
        DEFAULT_NUMBER_RATE_LIMIT, DEFAULT_RATE_HEADROOM, DEFAULT_SENDER_MAX_CONCURRENCY,
    };
    assert!(
        !env.contains_key("WAHOOK_SEND_RATE_PER_SECOND"),
        "no hand-matched rate"
    );
    let param = |name: &str| s(&t["Parameters"][name]["Default"]);
    assert_eq!(
        param("NumberRateLimit").parse::<f64>().unwrap(),
        DEFAULT_NUMBER_RATE_LIMIT
    );
    assert_eq!(
        param("RateHeadroom").parse::<f64>().unwrap(),
        DEFAULT_RATE_HEADROOM
    );
    assert_eq!(
        param("SenderMaximumConcurrency").parse::<u32>().unwrap(),
        DEFAULT_SENDER_MAX_CONCURRENCY
    );
    assert_eq!(
        s(&env["WAHOOK_SENDER_MAX_CONCURRENCY"]),
        "SenderMaximumConcurrency"
    );
    let webhook_timeout = s(&resource(&t, "WebhookFunction")["Properties"]["Timeout"]);
    assert_eq!(
        s(&environment(&t, "WebhookFunction")["WAHOOK_FUNCTION_TIMEOUT_SECONDS"]),
        webhook_timeout
    );
    let lease: i64 = s(&env["WAHOOK_LEASE_SECONDS"]).parse().unwrap();
    assert!(
        lease > timeout,
        "the claim lease ({lease} s) must outlive the function ({timeout} s)"
    );
}

#[test]
fn every_table_streams_to_the_publisher_which_names_failures_and_keeps_a_dlq() {
    let t = template();
    let p = &resource(&t, "PublisherFunction")["Properties"];
    let events = p["Events"].as_mapping().unwrap();
    let streams: BTreeSet<String> = events
        .values()
        .map(|e| {
            assert_eq!(s(&e["Type"]), "DynamoDB");
            let m = &e["Properties"];
            assert_eq!(m["FunctionResponseTypes"][0], "ReportBatchItemFailures");
            assert_eq!(m["BisectBatchOnFunctionError"], true);
            assert_eq!(
                s(&m["StartingPosition"]),
                "TRIM_HORIZON",
                "a new mapping misses nothing"
            );
            assert_eq!(
                s(&m["DestinationConfig"]["OnFailure"]["Destination"]),
                "PublisherDeadLetterQueue.Arn"
            );
            // Retried no longer than the stream keeps records (24 h), so the DLQ's coordinates
            // still point at records that can be replayed.
            let age = m["MaximumRecordAgeInSeconds"].as_i64().unwrap();
            assert!((60..86_400).contains(&age), "{age}");
            s(&m["Stream"])
        })
        .collect();
    let role = format!(
        "{:?}",
        resource(&t, "PublisherRole")["Properties"]["Policies"]
    );
    for def in &STREAMED_TABLES {
        let (name, table) = table_resource(&t, def);
        assert_eq!(
            s(&table["Properties"]["StreamSpecification"]["StreamViewType"]),
            "NEW_AND_OLD_IMAGES",
            "{name}: the publisher derives events from the before and after images"
        );
        let stream = format!("{name}.StreamArn");
        assert!(
            streams.contains(&stream),
            "{name} has no mapping to the publisher"
        );
        assert!(
            role.contains(&stream),
            "the publisher may not read {stream}"
        );
    }
    assert_eq!(streams.len(), STREAMED_TABLES.len());
    let (figures, _) = table_resource(&t, &FIGURES);
    assert!(
        resource(&t, &figures)["Properties"]["StreamSpecification"].is_null(),
        "the figures are the publisher's output, not an event source"
    );
    assert!(
        role.contains("events:PutEvents") && role.contains("EventBus.Arn"),
        "{role}"
    );
    assert!(
        !role.contains("dynamodb:GetItem") && !role.contains("dynamodb:DeleteItem"),
        "streams, the figures and the timeline index only: {role}"
    );
    assert!(
        role.contains("FiguresTable.Arn") && role.contains("/index/by_contact"),
        "{role}"
    );
    let env = environment(&t, "PublisherFunction");
    assert_eq!(s(&env["WAHOOK_FUNCTION_TIMEOUT_SECONDS"]), s(&p["Timeout"]));
    assert_eq!(s(&env["WAHOOK_EVENT_BUS_NAME"]), "EventBus.Name");
    assert_eq!(
        s(&resource(&t, "EventArchive")["Properties"]["SourceArn"]),
        "EventBus.Arn"
    );
    for alarm in [
        "PublisherDeadLetterQueueNotEmptyAlarm",
        "PublisherIteratorAgeAlarm",
        "QualityDropAlarm",
        "EventsSkippedAlarm",
        "ReplyRateLowAlarm",
    ] {
        resource(&t, alarm);
    }
}

#[test]
fn each_function_may_read_only_its_own_secrets_and_queues() {
    let t = template();
    let policy = |function: &str| {
        let role = s(&resource(&t, function)["Properties"]["Role"]);
        let role = role.trim_end_matches(".Arn");
        format!("{:?}", resource(&t, role)["Properties"]["Policies"])
    };
    let webhook = policy("WebhookFunction");
    assert!(!webhook.contains("AccessTokenArn"), "{webhook}");
    // Its one queue permission: sending media jobs.
    assert_eq!(webhook.matches("sqs:").count(), 1, "{webhook}");
    assert!(
        webhook.contains("sqs:SendMessage") && webhook.contains("MediaQueue.Arn"),
        "{webhook}"
    );
    let media = policy("MediaFunction");
    assert!(
        !media.contains("AppSecretArn") && !media.contains("SendsQueue"),
        "{media}"
    );
    for table in [
        "ContactsTable",
        "EventsTable",
        "SendsTable",
        "TemplatesTable",
    ] {
        assert!(
            !media.contains(table),
            "media records on messages only: {media}"
        );
    }
    let sender = policy("SenderFunction");
    assert!(
        !sender.contains("AppSecretArn") && !sender.contains("VerifyTokenArn"),
        "{sender}"
    );
    assert!(
        !sender.contains("EventsTable"),
        "the sender does not write webhook events"
    );
    let sync = policy("TemplateSyncFunction");
    assert!(
        !sync.contains("AppSecretArn") && !sync.contains("sqs:"),
        "{sync}"
    );
    for table in [
        "ContactsTable",
        "MessagesTable",
        "EventsTable",
        "SendsTable",
    ] {
        assert!(
            !sync.contains(table),
            "the sync touches only the registry: {sync}"
        );
    }
}

#[test]
fn the_template_sync_runs_on_a_schedule_only_when_an_account_is_named() {
    let t = template();
    // Its role, logs, alarm and output go with it: a stack without WabaId has none of them.
    for name in [
        "TemplateSyncFunction",
        "TemplateSyncRole",
        "TemplateSyncLogs",
        "TemplateSyncErrorsAlarm",
    ] {
        assert_eq!(s(&resource(&t, name)["Condition"]), "HasWabaId", "{name}");
    }
    assert_eq!(
        s(&t["Outputs"]["TemplateSyncFunctionName"]["Condition"]),
        "HasWabaId"
    );
    let p = &resource(&t, "TemplateSyncFunction")["Properties"];
    let events = p["Events"].as_mapping().unwrap();
    assert_eq!(events.len(), 1);
    let (_, event) = events.iter().next().unwrap();
    assert_eq!(s(&event["Type"]), "Schedule");
    assert_eq!(s(&event["Properties"]["Schedule"]), "TemplateSyncSchedule");
    assert_eq!(
        s(&t["Parameters"]["TemplateSyncSchedule"]["Default"]),
        "rate(1 hour)"
    );
    // The deadline the code checks is the function's.
    let env = environment(&t, "TemplateSyncFunction");
    assert_eq!(s(&env["WAHOOK_FUNCTION_TIMEOUT_SECONDS"]), s(&p["Timeout"]));
}

#[test]
fn no_function_gets_an_aws_managed_policy_or_a_wildcard_beyond_xray() {
    let t = template();
    for function in [
        "WebhookFunction",
        "SenderFunction",
        "MediaFunction",
        "PublisherFunction",
    ] {
        let props = &resource(&t, function)["Properties"];
        // With an explicit Role, SAM attaches nothing (no AWSLambdaBasicExecutionRole, no
        // AWSLambdaSQSQueueExecutionRole, no AWSXrayWriteOnlyAccess: each grants on "*").
        assert_eq!(
            tag_of(&props["Role"]).as_deref(),
            Some("!GetAtt"),
            "{function} names its role"
        );
        assert!(
            props["Policies"].is_null(),
            "{function}: policies belong on its role"
        );
        let role_name = s(&props["Role"]);
        let role = &resource(&t, role_name.trim_end_matches(".Arn"))["Properties"];
        assert!(
            role["ManagedPolicyArns"].is_null(),
            "{function}'s role has managed policies"
        );
        for policy in role["Policies"].as_sequence().unwrap() {
            for statement in policy["PolicyDocument"]["Statement"].as_sequence().unwrap() {
                if s(&statement["Resource"]) == "*" {
                    let actions = format!("{:?}", statement["Action"]);
                    assert!(
                        statement["Action"]
                            .as_sequence()
                            .unwrap()
                            .iter()
                            .all(|a| s(a).starts_with("xray:")),
                        "{function}: only X-Ray may have Resource \"*\": {actions}"
                    );
                }
            }
        }
    }
    for table in [
        "ContactsTable",
        "MessagesTable",
        "EventsTable",
        "SendsTable",
    ] {
        let r = resource(&t, table);
        assert_eq!(s(&r["DeletionPolicy"]), "Retain", "{table}");
        assert_eq!(s(&r["UpdateReplacePolicy"]), "Retain", "{table}");
    }
    assert_eq!(s(&t["Globals"]["Function"]["Tracing"]), "Active");
    let dlq = &resource(&t, "SendsDeadLetterQueue")["Properties"];
    assert_eq!(
        s(&dlq["RedriveAllowPolicy"]["redrivePermission"]),
        "byQueue"
    );
    let tls = format!("{:?}", resource(&t, "SendsQueuesPolicy")["Properties"]);
    assert!(
        tls.contains("aws:SecureTransport") && tls.contains("Deny"),
        "{tls}"
    );
    for alarm in [
        "AccountHaltedAlarm",
        "FailedSendsAlarm",
        "SendsBacklogAlarm",
        "WebhookNearTimeoutAlarm",
    ] {
        assert_eq!(s(&resource(&t, alarm)["Type"]), "AWS::CloudWatch::Alarm");
    }
}

/// After `infra/rehearse.py deploy`: what the emulator created.
fn rehearsal() -> serde_json::Value {
    let path = std::env::var("WAHOOK_REHEARSAL_REPORT").unwrap_or_else(|_| {
        panic!(
            "WAHOOK_REHEARSAL_REPORT is not set: scripts/test.sh rehearses a deploy of infra/template.yaml \
             into moto's CloudFormation and sets it; run the tests with scripts/test.sh"
        )
    });
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}")),
    )
    .unwrap()
}

fn pairs(env: &serde_json::Value) -> Vec<(String, String)> {
    env.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect()
}

async fn check_table(client: &aws_sdk_dynamodb::Client, def: &TableDef, name: &str) {
    let d = client
        .describe_table()
        .table_name(name)
        .send()
        .await
        .unwrap();
    let table = d.table().unwrap();
    let keys: Vec<(String, String)> = table
        .key_schema()
        .iter()
        .map(|k| {
            (
                k.attribute_name().to_owned(),
                k.key_type().as_str().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        keys,
        expected_keys(def.partition_key.name, def.sort_key.map(|k| k.name)),
        "{name}"
    );
    let mut indexes: Vec<String> = table
        .global_secondary_indexes()
        .iter()
        .filter_map(|g| g.index_name().map(str::to_owned))
        .collect();
    indexes.sort();
    let mut expected: Vec<String> = def.indexes.iter().map(|i| i.name.to_owned()).collect();
    expected.sort();
    assert_eq!(indexes, expected, "{name}");
    for a in table.attribute_definitions() {
        let kind = if a.attribute_type().as_str() == "N" {
            AttrKind::N
        } else {
            AttrKind::S
        };
        let declared = std::iter::once(def.partition_key)
            .chain(def.sort_key)
            .chain(
                def.indexes
                    .iter()
                    .flat_map(|i| std::iter::once(i.partition_key).chain(i.sort_key)),
            )
            .find(|k| k.name == a.attribute_name());
        assert_eq!(
            declared.map(|k| k.kind),
            Some(kind),
            "{name}.{}",
            a.attribute_name()
        );
    }
    // TTL is not compared here: moto's CloudFormation ignores TimeToLiveSpecification (the static
    // test above checks the template's TTL against the code).
}

#[tokio::test]
async fn the_rehearsed_deploy_gives_each_function_what_its_code_works_against() {
    let report = rehearsal();
    let sdk = wahook_tests::sdk_config().await;
    let dynamo = aws_sdk_dynamodb::Client::new(&sdk);
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    let functions = &report["functions"];

    let webhook_env = Env::from_pairs(pairs(&functions["WebhookFunction"]["environment"]));
    let webhook = WebhookConfig::load(&webhook_env, &SecretResolver::new(sdk.clone()))
        .await
        .expect("the deployed webhook's configuration loads, its secrets included");
    assert_eq!(webhook.verify_token.expose(), "rehearsal-verify-token");
    let sender_env = Env::from_pairs(pairs(&functions["SenderFunction"]["environment"]));
    let sender = SenderConfig::load(&sender_env, &SecretResolver::new(sdk.clone()))
        .await
        .expect("the deployed sender's configuration loads, its secret included");
    assert_eq!(sender.access_token.expose(), "rehearsal-access-token");

    let publisher_env = Env::from_pairs(pairs(&functions["PublisherFunction"]["environment"]));
    let publisher = PublisherConfig::load(&publisher_env)
        .expect("the deployed publisher's configuration loads");
    for def in &ALL_TABLES {
        let names = match def.logical {
            "events" => &webhook.storage.tables,
            "figures" => &publisher.storage.tables,
            _ => &sender.storage.tables,
        };
        check_table(&dynamo, def, names.name_of(def)).await;
    }
    assert_eq!(
        webhook.storage.tables.contacts, sender.storage.tables.contacts,
        "both functions share the contacts table"
    );
    assert_eq!(
        webhook.storage.tables.messages,
        sender.storage.tables.messages
    );

    // The queue the sender backs off on is the one its event source drains, and it dead-letters to
    // the DLQ the sender writes refusals to.
    let attrs = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .unwrap()
                .attributes()
                .cloned()
                .unwrap_or_default()
        }
    };
    let queue = attrs(sender.queue_url.clone()).await;
    let dlq = attrs(sender.dlq_url.clone()).await;
    let queue_arn = &queue[&aws_sdk_sqs::types::QueueAttributeName::QueueArn];
    let dlq_arn = &dlq[&aws_sdk_sqs::types::QueueAttributeName::QueueArn];
    let redrive: serde_json::Value =
        serde_json::from_str(&queue[&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy])
            .unwrap();
    assert_eq!(
        redrive["deadLetterTargetArn"].as_str(),
        Some(dlq_arn.as_str())
    );
    let mapping = report["event_source_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["function"] == functions["SenderFunction"]["name"])
        .expect("an event source mapping for the sender");
    assert_eq!(mapping["queue_arn"].as_str(), Some(queue_arn.as_str()));
    assert_eq!(
        mapping["response_types"],
        serde_json::json!(["ReportBatchItemFailures"])
    );
    // The sync (rehearsed with a WabaId) loads too, and writes the registry the sender reads.
    let sync_env = Env::from_pairs(pairs(&functions["TemplateSyncFunction"]["environment"]));
    let sync = TemplateSyncConfig::load(&sync_env, &SecretResolver::new(sdk.clone()))
        .await
        .expect("the deployed template sync's configuration loads, its secret included");
    assert_eq!(sync.access_token.expose(), "rehearsal-access-token");
    assert_eq!(
        sync.storage.tables.templates,
        sender.storage.tables.templates
    );
    assert_eq!(
        Some(&sync.waba_id),
        sender.settings.templates.waba_id.as_ref()
    );
    assert_eq!(
        sync.deadlines.function_timeout.as_secs(),
        functions["TemplateSyncFunction"]["timeout"]
            .as_u64()
            .unwrap()
    );
    // The media function loads, drains the queue the webhook fills, and records on its messages.
    let media_env = Env::from_pairs(pairs(&functions["MediaFunction"]["environment"]));
    let media = MediaConfig::load(&media_env, &SecretResolver::new(sdk.clone()))
        .await
        .expect("the deployed media function's configuration loads, its secret included");
    assert_eq!(
        media.storage.tables.messages,
        webhook.storage.tables.messages
    );
    assert_eq!(
        media.deadlines.function_timeout.as_secs(),
        functions["MediaFunction"]["timeout"].as_u64().unwrap()
    );
    let media_queue = attrs(
        webhook
            .media_queue_url
            .clone()
            .expect("the webhook queues media jobs"),
    )
    .await;
    let media_mapping = report["event_source_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["function"] == functions["MediaFunction"]["name"])
        .expect("an event source mapping for the media function");
    assert_eq!(
        media_mapping["queue_arn"].as_str(),
        Some(media_queue[&aws_sdk_sqs::types::QueueAttributeName::QueueArn].as_str())
    );
    assert!(media_queue.contains_key(&aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy));
    // The publisher names the same tables, and each table's stream feeds it.
    let (pt, st) = (&publisher.storage.tables, &sender.storage.tables);
    assert_eq!(
        (
            &pt.contacts,
            &pt.messages,
            &pt.sends,
            &pt.templates,
            &pt.events
        ),
        (
            &st.contacts,
            &st.messages,
            &st.sends,
            &st.templates,
            &webhook.storage.tables.events
        ),
        "the publisher places records by the tables the other functions write"
    );
    assert_eq!(
        publisher.deadlines.function_timeout.as_secs(),
        functions["PublisherFunction"]["timeout"].as_u64().unwrap()
    );
    let bus = aws_sdk_eventbridge::Client::new(&sdk)
        .describe_event_bus()
        .name(&publisher.bus_name)
        .send()
        .await
        .expect("the bus the publisher names exists");
    assert_eq!(bus.name(), Some(publisher.bus_name.as_str()));
    let streamed: BTreeSet<String> = report["event_source_mappings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["function"] == functions["PublisherFunction"]["name"])
        .map(|m| {
            assert_eq!(
                m["response_types"],
                serde_json::json!(["ReportBatchItemFailures"])
            );
            let arn = m["queue_arn"].as_str().unwrap();
            arn.split("table/")
                .nth(1)
                .unwrap()
                .split('/')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let t = &publisher.storage.tables;
    assert_ne!(
        t.figures, "wahook-figures",
        "the publisher is given the stack's figures table"
    );
    let expected: BTreeSet<String> = [&t.contacts, &t.messages, &t.events, &t.sends, &t.templates]
        .into_iter()
        .cloned()
        .collect();
    assert_eq!(
        streamed, expected,
        "every table's stream feeds the publisher"
    );
    for f in [
        "WebhookFunction",
        "SenderFunction",
        "TemplateSyncFunction",
        "MediaFunction",
        "PublisherFunction",
    ] {
        assert_eq!(functions[f]["runtime"], "provided.al2023", "{f}");
        assert_eq!(functions[f]["handler"], "bootstrap", "{f}");
    }
}
