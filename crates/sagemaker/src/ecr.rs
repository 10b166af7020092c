//! Amazon ECR as the registry build stages push to: a login from `GetAuthorizationToken`, the
//! repository created (scanned on push) when it is missing, and where the image's bytes go.

use aws_sdk_ecr::Client;
use aws_sdk_ecr::error::ProvideErrorMetadata;
use aws_sdk_ecr::types::ImageScanningConfiguration;
use base64::Engine as _;
use engine::{Identity, ManagedError, ManagedRegistry, RegistryLogin};
use futures::future::BoxFuture;
use pipeline::Ecr;
use tokio::io::{AsyncWrite, AsyncWriteExt};

use crate::{Api, Error, SageMaker};

/// Where the image's bytes go instead of ECR's own host: a mirror in front of it, or a registry
/// on loopback standing in for it in tests (an emulator of ECR's API has no registry to push to).
const PUSH_REGISTRY: &str = "SAGEBRUSH_ECR_PUSH_REGISTRY";

impl ManagedRegistry for SageMaker {
    fn prepare<'a>(
        &'a self,
        registry: &'a Ecr,
        repository: &'a str,
        log: &'a mut (dyn AsyncWrite + Unpin + Send),
    ) -> BoxFuture<'a, Result<RegistryLogin, ManagedError>> {
        Box::pin(async move { Ok(self.prepare_ecr(registry, repository, log).await?) })
    }

    fn reachable(&self) -> BoxFuture<'_, Identity> {
        Box::pin(async move {
            let login = async { self.login(&self.ecr(None).await?, None).await };
            match login.await {
                Ok(login) => Identity::Accepted(format!("logged in to {}", login.registry)),
                Err(e @ Error::Credentials { .. }) => Identity::Refused(e.to_string()),
                Err(e) => Identity::Missing(e.to_string()),
            }
        })
    }
}

impl SageMaker {
    async fn ecr(&self, region: Option<&str>) -> Result<Client, Error> {
        Ok(Client::new(&self.config(region).await?))
    }

    async fn prepare_ecr(
        &self,
        registry: &Ecr,
        repository: &str,
        log: &mut (dyn AsyncWrite + Unpin + Send),
    ) -> Result<RegistryLogin, Error> {
        let client = self.ecr(registry.region.as_deref()).await?;
        let login = self.login(&client, registry.account.as_deref()).await?;
        let said = match self.ensure_repository(&client, registry.account.as_deref(), repository).await? {
            Repository::Created => format!("created ECR repository {repository} (scan on push)"),
            Repository::Exists => format!("ECR repository {repository} exists"),
        };
        let mut said = format!("{said}; logged in to {}", login.registry);
        if login.push_to != login.registry {
            said.push_str(&format!(", pushing to {} ({PUSH_REGISTRY})", login.push_to));
        }
        let _ = log.write_all(format!("{said}\n").as_bytes()).await;
        Ok(login)
    }

    /// A login from an authorization token (`AWS:<password>` in base64) for the account's registry,
    /// the caller's own (`proxyEndpoint`) unless the stage names another.
    async fn login(&self, client: &Client, account: Option<&str>) -> Result<RegistryLogin, Error> {
        const OPERATION: &str = "GetAuthorizationToken";
        let incomplete = |what| Error::Incomplete { api: Api::Ecr, operation: OPERATION, what };
        // The token opens every registry the caller may use; its endpoint is the caller's own.
        let answer = client.get_authorization_token().send().await.map_err(|e| Error::sdk(Api::Ecr, OPERATION, e))?;
        let data = answer.authorization_data().first().ok_or_else(|| incomplete("authorizationData"))?;
        let token = data.authorization_token().ok_or_else(|| incomplete("an authorizationToken"))?;
        let endpoint = data.proxy_endpoint().ok_or_else(|| incomplete("a proxyEndpoint"))?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(token).ok();
        let (username, password) = decoded
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.split_once(':').map(|(u, p)| (u.to_owned(), p.to_owned())))
            .ok_or_else(|| incomplete("an authorizationToken of the form user:password"))?;
        let own = endpoint.trim_start_matches("https://").trim_end_matches('/');
        let registry = match account {
            // `<account>.dkr.ecr.<region>.<domain>`: another account's, in the same region and domain.
            Some(account) => match own.split_once(".dkr.ecr.") {
                Some((_, rest)) => format!("{account}.dkr.ecr.{rest}"),
                None => return Err(incomplete("a proxyEndpoint of the form <account>.dkr.ecr.<region>")),
            },
            None => own.to_owned(),
        };
        let push_to = std::env::var(PUSH_REGISTRY).ok().filter(|r| !r.is_empty()).unwrap_or_else(|| registry.clone());
        Ok(RegistryLogin { registry, push_to, username, password })
    }

    async fn ensure_repository(
        &self,
        client: &Client,
        account: Option<&str>,
        repository: &str,
    ) -> Result<Repository, Error> {
        let described = client
            .describe_repositories()
            .set_registry_id(account.map(str::to_owned))
            .repository_names(repository)
            .send()
            .await;
        match described {
            Ok(_) => return Ok(Repository::Exists),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_repository_not_found_exception()) => {}
            Err(e) => return Err(Error::sdk(Api::Ecr, "DescribeRepositories", e)),
        }
        let scanning = ImageScanningConfiguration::builder().scan_on_push(true).build();
        let created = client
            .create_repository()
            .set_registry_id(account.map(str::to_owned))
            .repository_name(repository)
            .image_scanning_configuration(scanning)
            .send()
            .await;
        match created {
            Ok(_) => Ok(Repository::Created),
            // Another run made it in between.
            Err(e) if e.as_service_error().is_some_and(|e| e.code() == Some("RepositoryAlreadyExistsException")) => {
                Ok(Repository::Exists)
            }
            Err(e) => Err(Error::sdk(Api::Ecr, "CreateRepository", e)),
        }
    }
}

enum Repository {
    Created,
    Exists,
}
