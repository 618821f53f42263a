//! The webhook Lambda's adapter: an API Gateway HTTP API (v2) or Function URL event in, the library's
//! answer out. No rule lives here; see `wahook::webhook`.

use lambda_http::{Body, Error, Request, RequestExt, Response};
use wahook::verification::VerificationQuery;
use wahook::webhook::{WebhookRequest, WebhookService};

/// Handles one invocation. `lambda_http` has already decoded a base64 body (`isBase64Encoded`), so
/// `req.body()` holds the exact bytes Meta signed.
pub async fn handle(service: &WebhookService, req: Request) -> Result<Response<Body>, Error> {
    let params = req.query_string_parameters_ref();
    let param = |name: &str| params.and_then(|p| p.first(name));
    let query = VerificationQuery {
        mode: param("hub.mode"),
        verify_token: param("hub.verify_token"),
        challenge: param("hub.challenge"),
    };
    let answer = service
        .handle(WebhookRequest {
            method: req.method(),
            headers: req.headers(),
            query,
            body: req.body().as_ref(),
        })
        .await;

    let mut response = Response::builder()
        .status(answer.status)
        .header("content-type", answer.content_type)
        // The challenge is echoed as text: never let a browser sniff it into something else.
        .header("x-content-type-options", "nosniff");
    if let Some(allow) = answer.allow {
        response = response.header("allow", allow);
    }
    Ok(response.body(Body::Text(answer.body))?)
}
