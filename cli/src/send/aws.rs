//! The AWS SDK for Rust side of `send`: the client, built once from the usual chains
//! (region, credentials, endpoint) and again when credentials are refused, and the
//! translation of its answers into the core's error kinds. The SDK sends each request
//! once: its own retries are off, every retry decision is the engine's.

use std::error::Error as StdError;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_kinesis::Client;
use aws_sdk_kinesis::config::{ProvideCredentials, Region};
use aws_sdk_kinesis::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use kinesis_batcher::retry::ErrorKind;

use crate::args::SendOptions;

/// How long a connection may take to open.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one PutRecords call may take, from sending to the whole response (a 10 MiB
/// request on a slow link included). Past it, its records are sent again (Transport).
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(120);

/// A client, and what it was built with, for the summary.
#[derive(Clone)]
pub struct Connection {
    /// The Kinesis client.
    pub client: Client,
    /// The region in force.
    pub region: String,
}

/// Builds a client from the options and the SDK's chains, and checks that the
/// credentials chain finds credentials now. The error says what is missing.
pub async fn connect(send: &SendOptions) -> Result<Connection, String> {
    // rustls with ring: no C toolchain step beyond ring's own, unlike aws-lc-rs.
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let mut loader = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .retry_config(RetryConfig::disabled())
        .timeout_config(
            TimeoutConfig::builder()
                .connect_timeout(CONNECT_TIMEOUT)
                .operation_attempt_timeout(ATTEMPT_TIMEOUT)
                .build(),
        );
    if let Some(region) = &send.region {
        loader = loader.region(Region::new(region.clone()));
    }
    if let Some(url) = &send.endpoint_url {
        loader = loader.endpoint_url(url);
    }
    let config = loader.load().await;
    let Some(region) = config.region().map(ToString::to_string) else {
        return Err(
            "send: no region: give --region R, or set AWS_REGION (or a region in the profile)"
                .into(),
        );
    };
    let Some(provider) = config.credentials_provider() else {
        return Err("send: no credentials provider".into());
    };
    if let Err(error) = provider.provide_credentials().await {
        return Err(format!(
            "send: no credentials: {} (set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, \
             AWS_PROFILE, or see 'kinesis-batcher --help')",
            DisplayErrorContext(&error)
        ));
    }
    Ok(Connection {
        client: Client::new(&config),
        region,
    })
}

/// The kind of a failed PutRecords call: the service's error code (`from_code`), else
/// the HTTP status (`from_http_status`); no response at all (timeout, connection
/// failure) is `Transport`; credentials that cannot be had or that the service refuses
/// are `Credentials`.
pub fn classify<E: ProvideErrorMetadata + StdError + 'static, R: std::fmt::Debug + 'static>(
    error: &SdkError<E, R>,
    status: Option<u16>,
) -> ErrorKind {
    let by_status = |fallback| {
        status
            .and_then(ErrorKind::from_http_status)
            .unwrap_or(fallback)
    };
    match error {
        SdkError::ServiceError(context) => match context.err().code() {
            Some(code) => ErrorKind::from_code(code.as_bytes()),
            None => by_status(ErrorKind::Unknown),
        },
        SdkError::TimeoutError(_) => ErrorKind::Transport,
        SdkError::DispatchFailure(_) if is_credentials_error(error) => ErrorKind::Credentials,
        SdkError::DispatchFailure(_) => ErrorKind::Transport,
        // A response that could not be read: its status if it is an error's, else a
        // response unlike PutRecords' (sent again, within the attempt limits).
        SdkError::ResponseError(_) => by_status(ErrorKind::BadResponse),
        SdkError::ConstructionFailure(_) if is_credentials_error(error) => ErrorKind::Credentials,
        // The request could not be built: the same would happen again.
        SdkError::ConstructionFailure(_) => ErrorKind::ClientError,
        _ => by_status(ErrorKind::Unknown),
    }
}

/// Whether the credentials provider failed somewhere in the error's sources.
fn is_credentials_error(error: &(dyn StdError + 'static)) -> bool {
    let mut source = Some(error);
    while let Some(error) = source {
        if error.downcast_ref::<CredentialsError>().is_some() {
            return true;
        }
        source = error.source();
    }
    false
}

/// The error in words: the service's code and message when it answered, else the
/// SDK's whole chain of causes.
pub fn describe<E: ProvideErrorMetadata + StdError + 'static, R: std::fmt::Debug + 'static>(
    error: &SdkError<E, R>,
) -> String {
    if let SdkError::ServiceError(context) = error {
        let err = context.err();
        if let Some(code) = err.code() {
            return match err.message() {
                Some(message) => format!("{code}: {message}"),
                None => code.to_owned(),
            };
        }
    }
    DisplayErrorContext(error).to_string()
}

#[cfg(test)]
mod tests {
    use aws_sdk_kinesis::error::ErrorMetadata;
    use aws_sdk_kinesis::operation::put_records::PutRecordsError;
    use aws_smithy_runtime_api::client::orchestrator::HttpResponse;
    use aws_smithy_runtime_api::client::result::ConnectorError;
    use aws_smithy_runtime_api::http::StatusCode;
    use aws_smithy_types::body::SdkBody;

    use super::*;

    type Error = SdkError<PutRecordsError, HttpResponse>;

    fn response(status: u16) -> HttpResponse {
        HttpResponse::new(
            StatusCode::try_from(status).expect("a status"),
            SdkBody::empty(),
        )
    }

    fn service(code: Option<&str>, status: u16) -> Error {
        let mut meta = ErrorMetadata::builder().message("m");
        if let Some(code) = code {
            meta = meta.code(code);
        }
        SdkError::service_error(PutRecordsError::generic(meta.build()), response(status))
    }

    #[test]
    fn service_errors_by_code_then_status() {
        for (code, status, kind) in [
            (
                Some("ResourceNotFoundException"),
                400,
                ErrorKind::ResourceNotFound,
            ),
            (
                Some("ProvisionedThroughputExceededException"),
                400,
                ErrorKind::ThroughputExceeded,
            ),
            (Some("ExpiredTokenException"), 400, ErrorKind::Credentials),
            (
                Some("UnrecognizedClientException"),
                400,
                ErrorKind::Credentials,
            ),
            (Some("InternalFailure"), 500, ErrorKind::InternalFailure),
            (Some("ServiceUnavailable"), 503, ErrorKind::ServerError),
            (Some("SomethingNew"), 400, ErrorKind::Unknown),
            (None, 503, ErrorKind::ServerError),
            (None, 429, ErrorKind::Throttling),
            (None, 403, ErrorKind::ClientError),
        ] {
            let error = service(code, status);
            assert_eq!(classify(&error, Some(status)), kind, "{code:?} {status}");
        }
        assert_eq!(
            describe(&service(Some("ResourceNotFoundException"), 400)),
            "ResourceNotFoundException: m"
        );
    }

    #[test]
    fn no_response_is_transport_unless_credentials_failed() {
        let timeout: Error = SdkError::timeout_error("slow");
        assert_eq!(classify(&timeout, None), ErrorKind::Transport);
        let io: Error = SdkError::dispatch_failure(ConnectorError::io("reset".into()));
        assert_eq!(classify(&io, None), ErrorKind::Transport);
        let creds: Error = SdkError::dispatch_failure(ConnectorError::other(
            Box::new(CredentialsError::not_loaded("no profile")),
            None,
        ));
        assert_eq!(classify(&creds, None), ErrorKind::Credentials);
        let built: Error = SdkError::construction_failure("bad input");
        assert_eq!(classify(&built, None), ErrorKind::ClientError);
        let built: Error =
            SdkError::construction_failure(CredentialsError::not_loaded("no provider"));
        assert_eq!(classify(&built, None), ErrorKind::Credentials);
        let unreadable: Error = SdkError::response_error("garbled", response(200));
        assert_eq!(classify(&unreadable, Some(200)), ErrorKind::BadResponse);
        let unreadable: Error = SdkError::response_error("garbled", response(502));
        assert_eq!(classify(&unreadable, Some(502)), ErrorKind::ServerError);
    }
}
