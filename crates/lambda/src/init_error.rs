//! Reporting a failed start to the Runtime API's init error route, so Lambda
//! shows the reason (`Runtime.InitError` with sqsrt's message) instead of a
//! bare "exited" and retries the environment.

use http::{Method, Uri};
use lambda_runtime::Diagnostic;
use lambda_runtime_api_client::{PooledClient, build_request};

/// Why an init error could not be reported.
#[derive(Debug, thiserror::Error)]
pub enum InitReportError {
    /// `AWS_LAMBDA_RUNTIME_API` is not a host and port.
    #[error("AWS_LAMBDA_RUNTIME_API={0:?} is not a host:port")]
    Endpoint(String),
    /// The request could not be sent or was refused.
    #[error("the Runtime API did not take the init error: {0}")]
    Send(String),
}

/// Why `AWS_LAMBDA_RUNTIME_API` cannot be used, if it cannot: the runtime
/// client takes `host:port` or a URL (`http://host:port/prefix`), and would
/// panic at start on anything else.
#[must_use]
pub fn runtime_api_problem(value: &str) -> Option<String> {
    match Uri::try_from(value) {
        Ok(uri) if uri.authority().is_some() => None,
        Ok(_) => Some(format!(
            "AWS_LAMBDA_RUNTIME_API={value:?} names no host:port"
        )),
        Err(e) => Some(format!(
            "AWS_LAMBDA_RUNTIME_API={value:?} is not host:port or a URL such as http://host:port/prefix: {e}"
        )),
    }
}

/// Posts `error_type` and `message` to `/runtime/init/error` of the Runtime
/// API at `api` (the value of `AWS_LAMBDA_RUNTIME_API`). Lambda ends the
/// environment after it; the caller should exit non-zero.
///
/// # Errors
///
/// [`InitReportError`] when the endpoint is malformed or the API refuses.
pub async fn report_init_error(
    api: &str,
    error_type: &str,
    message: &str,
) -> Result<(), InitReportError> {
    let base = if api.starts_with("http://") || api.starts_with("https://") {
        api.to_owned()
    } else {
        format!("http://{api}")
    };
    let base: Uri = base
        .parse()
        .map_err(|_| InitReportError::Endpoint(api.to_owned()))?;
    let client = PooledClient::builder().with_endpoint(base).build();
    let diagnostic = Diagnostic {
        error_type: error_type.to_owned(),
        error_message: message.to_owned(),
    };
    let body = serde_json::to_vec(&diagnostic).map_err(|e| InitReportError::Send(e.to_string()))?;
    let request = build_request()
        .method(Method::POST)
        .uri("/2018-06-01/runtime/init/error")
        .header("lambda-runtime-function-error-type", "Runtime.InitError")
        .header("content-type", "application/json")
        .body(body.into())
        .map_err(|e| InitReportError::Send(e.to_string()))?;
    let response = client
        .call(request)
        .await
        .map_err(|e| InitReportError::Send(e.to_string()))?;
    if response.status().is_success() {
        Ok(())
    } else {
        Err(InitReportError::Send(format!(
            "status {}",
            response.status()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runtime_api_values_the_client_takes() {
        for good in [
            "127.0.0.1:9001",
            "http://127.0.0.1:9001/.rt",
            "localhost:9001",
        ] {
            assert_eq!(runtime_api_problem(good), None, "{good}");
        }
        for bad in ["127.0.0.1:9001/.rt", "", "/just/a/path"] {
            let problem = runtime_api_problem(bad).expect(bad);
            assert!(problem.starts_with("AWS_LAMBDA_RUNTIME_API="), "{problem}");
        }
    }
}
