//! The CPU the webhook spends in the AWS SDK per DynamoDB write, with the network taken out: a status
//! is stored as a read (GetItem) and a conditional write (UpdateItem), each serialised, signed
//! (SigV4), run through the SDK's orchestrator (retries, timeouts, interceptors) and its answer
//! parsed. The HTTP client answers at once with a canned body, so what is measured is ours and the
//! SDK's, not DynamoDB's or moto's. A 1000-status delivery makes up to a thousand of these pairs.
//!
//! It is why the release profile builds dependencies for speed, not size (Cargo.toml): with
//! `opt-level = "s"` for dependencies this pair cost 17 % more (docs/performance.md). It is also the
//! webhook's largest CPU cost per status by far: about a hundred times the core's parse and plan.

use std::collections::HashMap;

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_types::body::SdkBody;
use criterion::{criterion_group, criterion_main, Criterion};

const ITEM: &str = r#"{"Item":{"wamid":{"S":"wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA"},"version":{"N":"3"},"status":{"S":"sent"},"status_log":{"M":{"sent":{"S":"{\"status\":\"sent\",\"timestamp\":\"1733461200\"}"}}},"contact":{"S":"106540352242922#15550123456"}}}"#;

/// Answers at once: the item for a GetItem, `{}` for anything else.
#[derive(Debug, Clone)]
struct Canned;

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request.headers().get("x-amz-target").unwrap_or_default();
        let body = if target.ends_with("GetItem") {
            ITEM
        } else {
            "{}"
        };
        let mut response = HttpResponse::new(200.try_into().unwrap(), SdkBody::from(body));
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn client() -> aws_sdk_dynamodb::Client {
    aws_sdk_dynamodb::Client::from_conf(
        aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::v2026_01_12())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(
                "AKIDEXAMPLE",
                "secret",
                None,
                None,
                "bench",
            ))
            .http_client(Canned)
            .build(),
    )
}

async fn store_one_status(client: &aws_sdk_dynamodb::Client) {
    let wamid = "wamid.HBgLMTU1NTAxMjM0NTYVAgARGBI5QTNDQTVCM0Q0Q0Q2RTY3RTcA";
    client
        .get_item()
        .table_name("wahook-messages")
        .key("wamid", AttributeValue::S(wamid.into()))
        .consistent_read(true)
        .send()
        .await
        .expect("the canned item");
    let names = HashMap::from([
        ("#status".to_owned(), "status".to_owned()),
        ("#log".to_owned(), "status_log".to_owned()),
        ("#v".to_owned(), "version".to_owned()),
    ]);
    let values = HashMap::from([
        (":status".to_owned(), AttributeValue::S("delivered".into())),
        (
            ":log".to_owned(),
            AttributeValue::M(HashMap::from([(
                "delivered".to_owned(),
                AttributeValue::S(r#"{"status":"delivered","timestamp":"1733461260"}"#.into()),
            )])),
        ),
        (":at".to_owned(), AttributeValue::N("1733461260".into())),
        (
            ":pricing".to_owned(),
            AttributeValue::S("utility/regular".into()),
        ),
        (":old".to_owned(), AttributeValue::N("3".into())),
        (":new".to_owned(), AttributeValue::N("4".into())),
    ]);
    client
        .update_item()
        .table_name("wahook-messages")
        .key("wamid", AttributeValue::S(wamid.into()))
        .update_expression(
            "SET #status = :status, #log = :log, delivered_at = :at, pricing = :pricing, #v = :new",
        )
        .condition_expression("#v = :old")
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values(Some(values))
        .send()
        .await
        .expect("the canned answer");
}

fn bench(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = client();
    c.bench_function("sdk/dynamodb_get_then_update", |b| {
        b.iter(|| runtime.block_on(store_one_status(&client)))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
