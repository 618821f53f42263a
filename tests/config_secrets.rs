//! Secrets come from Secrets Manager or SSM when an ARN/name is configured (moto plays both), and a
//! missing one stops start-up with a message naming the variable to set.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_sdk_ssm::types::ParameterType;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::HttpRequest;
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use wahook::config::{Env, SecretResolver, WebhookConfig};
use wahook_tests::{sdk_config, unique_prefix};

/// An SSM `SecureString` parameter, as the stack stores a secret there.
async fn put_secure_parameter(sdk: &SdkConfig, name: &str, value: &str) {
    aws_sdk_ssm::Client::new(sdk)
        .put_parameter()
        .name(name)
        .value(value)
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn secrets_are_read_from_secrets_manager_and_ssm() {
    let sdk = sdk_config().await;
    let name = unique_prefix("secret");
    let secret = aws_sdk_secretsmanager::Client::new(&sdk)
        .create_secret()
        .name(format!("{name}/app-secret"))
        .secret_string("app-secret-from-secrets-manager")
        .send()
        .await
        .unwrap();
    let param = format!("/{name}/verify-token");
    put_secure_parameter(&sdk, &param, "verify-token-from-ssm").await;

    let env = Env::from_pairs([
        ("WAHOOK_APP_SECRET_ARN", secret.arn().unwrap().to_owned()),
        ("WAHOOK_VERIFY_TOKEN_PARAM", param),
    ]);
    let config = WebhookConfig::load(&env, &SecretResolver::new(sdk))
        .await
        .unwrap();
    assert_eq!(
        config.app_secrets[0].expose(),
        "app-secret-from-secrets-manager"
    );
    assert_eq!(config.verify_token.expose(), "verify-token-from-ssm");
}

#[tokio::test]
async fn an_unreadable_secret_says_which_variable_and_where() {
    let sdk = sdk_config().await;
    let env = Env::from_pairs([
        (
            "WAHOOK_APP_SECRET_ARN",
            "arn:aws:secretsmanager:us-east-1:123456789012:secret:nope-AbCdEf",
        ),
        ("WAHOOK_VERIFY_TOKEN", "t"),
    ]);
    let err = WebhookConfig::load(&env, &SecretResolver::new(sdk))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "could not read WAHOOK_APP_SECRET from Secrets Manager secret arn:aws:secretsmanager"
        ),
        "{err}"
    );
    assert!(err.contains("the function's role may read it"), "{err}");
}

#[tokio::test]
async fn a_blank_secret_in_ssm_fails_start_up() {
    let sdk = sdk_config().await;
    let param = format!("/{}/blank", unique_prefix("blank"));
    put_secure_parameter(&sdk, &param, " ").await;
    let env = Env::from_pairs([
        ("WAHOOK_APP_SECRET", "a".to_owned()),
        ("WAHOOK_VERIFY_TOKEN_PARAM", param),
    ]);
    let err = WebhookConfig::load(&env, &SecretResolver::new(sdk))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("WAHOOK_VERIFY_TOKEN is blank (read from SSM parameter"),
        "{err}"
    );
}

/// Counts the requests an SDK configuration sends, by `X-Amz-Target` (the operation, for the JSON
/// protocols Secrets Manager and SSM speak), at the HTTP layer: every client built from the
/// configuration, however the code under test builds it, goes through here.
#[derive(Debug, Clone)]
struct CountingHttp {
    inner: SharedHttpClient,
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
}

#[derive(Debug)]
struct CountingConnector {
    inner: SharedHttpConnector,
    counts: Arc<Mutex<BTreeMap<String, usize>>>,
}

impl HttpClient for CountingHttp {
    fn http_connector(
        &self,
        settings: &HttpConnectorSettings,
        components: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(CountingConnector {
            inner: self.inner.http_connector(settings, components),
            counts: self.counts.clone(),
        })
    }
}

impl HttpConnector for CountingConnector {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let target = request
            .headers()
            .get("x-amz-target")
            .unwrap_or("(no target)")
            .to_owned();
        *self.counts.lock().unwrap().entry(target).or_default() += 1;
        self.inner.call(request)
    }
}

#[tokio::test]
async fn a_cold_start_reads_each_secret_with_one_call() {
    let sdk = sdk_config().await;
    let name = unique_prefix("secret-calls");
    let sm = aws_sdk_secretsmanager::Client::new(&sdk);
    let mut arns = Vec::new();
    for which in ["app-secret", "app-secret-previous"] {
        let created = sm
            .create_secret()
            .name(format!("{name}/{which}"))
            .secret_string(format!("{which}-value"))
            .send()
            .await
            .unwrap();
        arns.push(created.arn().unwrap().to_owned());
    }
    let param = format!("/{name}/verify-token");
    put_secure_parameter(&sdk, &param, "verify-token-value").await;

    let counts = Arc::default();
    let counted = sdk
        .to_builder()
        .http_client(CountingHttp {
            // moto speaks plain HTTP; the SDK's own default client is chosen per service client.
            inner: aws_smithy_http_client::Builder::new().build_http(),
            counts: Arc::clone(&counts),
        })
        .build();
    let env = Env::from_pairs([
        ("WAHOOK_APP_SECRET_ARN", arns[0].clone()),
        ("WAHOOK_APP_SECRET_PREVIOUS_ARN", arns[1].clone()),
        ("WAHOOK_VERIFY_TOKEN_PARAM", param),
    ]);
    let config = WebhookConfig::load(&env, &SecretResolver::new(counted))
        .await
        .unwrap();
    assert_eq!(config.app_secrets.len(), 2);

    let counts = counts.lock().unwrap().clone();
    let expected: BTreeMap<String, usize> = [
        ("secretsmanager.GetSecretValue".to_owned(), 2),
        ("AmazonSSM.GetParameter".to_owned(), 1),
    ]
    .into();
    assert_eq!(
        counts, expected,
        "one call per secret per cold start, and nothing else"
    );
}
