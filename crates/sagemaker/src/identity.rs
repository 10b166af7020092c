//! Whose credentials these are (STS GetCallerIdentity), for `sagebrush doctor`.

use aws_sdk_sts::error::{DisplayErrorContext, SdkError};

use crate::{CREDENTIAL_CODES, SageMaker, code_and_message};

impl SageMaker {
    pub(crate) async fn who(&self) -> engine::Identity {
        let config = match self.config(None).await {
            Ok(config) => config,
            Err(e) => return engine::Identity::Missing(e.to_string()),
        };
        let region = config.region().map(|r| r.to_string()).unwrap_or_default();
        match aws_sdk_sts::Client::new(&config).get_caller_identity().send().await {
            Ok(who) => engine::Identity::Accepted(format!(
                "account {} as {}, region {region}",
                who.account().unwrap_or("?"),
                who.arn().unwrap_or("?")
            )),
            Err(SdkError::ServiceError(service)) => {
                let (code, message) = code_and_message(service.err(), service.raw());
                let said = format!("the credentials were refused: {code}: {message}");
                if CREDENTIAL_CODES.contains(&code.as_str()) || service.raw().status().as_u16() == 403 {
                    engine::Identity::Refused(said)
                } else {
                    engine::Identity::Missing(said)
                }
            }
            Err(other) => {
                engine::Identity::Missing(format!("no usable AWS credentials: {}", DisplayErrorContext(&other)))
            }
        }
    }
}
