//! The AWS SDK configuration every function shares.

use aws_config::{BehaviorVersion, SdkConfig};

/// Region, credentials and endpoint from the environment (`AWS_REGION`, Lambda's role credentials,
/// `AWS_ENDPOINT_URL` for the local emulator). The behavior version is pinned so an SDK upgrade cannot
/// silently change retries or timeouts.
pub async fn sdk_config() -> SdkConfig {
    sdk_loader().load().await
}

/// The loader behind [`sdk_config`], for callers that set more (a test's region or endpoint, the dev
/// tool's credentials): every configuration in the workspace starts here, so tests and tools run
/// the behavior version the functions do.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(BehaviorVersion::v2026_01_12())
}

/// An S3 client on `sdk`. An emulator on an endpoint URL (moto) has no bucket subdomains, so
/// path-style addressing there only.
pub fn s3_client(sdk: &SdkConfig) -> aws_sdk_s3::Client {
    aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(sdk)
            .force_path_style(sdk.endpoint_url().is_some())
            .build(),
    )
}
