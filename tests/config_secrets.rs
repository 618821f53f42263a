//! Secrets come from Secrets Manager or SSM when an ARN/name is configured (moto plays both), and a
//! missing one stops start-up with a message naming the variable to set.

use aws_sdk_ssm::types::ParameterType;
use wahook::config::{Env, SecretResolver, WebhookConfig};
use wahook_tests::{sdk_config, unique_prefix};

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
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value("verify-token-from-ssm")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();

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
    aws_sdk_ssm::Client::new(&sdk)
        .put_parameter()
        .name(&param)
        .value(" ")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
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
