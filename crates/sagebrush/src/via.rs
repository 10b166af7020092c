//! Where a command's operation is carried out: by the running server through its API, or, with
//! none, by the same service layer in this process. Both give the same types and the same errors.

use axum::http::StatusCode;
use engine::Home;
use names::Name;
use server::service::{
    AddProject, AuditPage, CreatedToken, Decision, DeployRequest, Deployed, EndpointView, EventsPage, GcRequest,
    RunDetail, RunFilter, RunsPage, Served, WeightsRequest,
};
use server::{Service, ServiceError};
use store::{ModelVersionRecord, ProjectRecord, Role, TokenRecord};

use crate::client::Client;

pub enum Via {
    Server(Client),
    Local(Service),
}

/// An in-process change, recorded in the audit as the server records the same call (by `local`).
async fn change<T>(
    service: &Service,
    method: &str,
    path: &str,
    ok: StatusCode,
    result: Result<T, ServiceError>,
) -> anyhow::Result<T> {
    let status = result.as_ref().map_or_else(|e| e.status, |_| ok);
    service.record(&server::auth::Caller::local(), &format!("{method} /api/v1{path}"), status).await;
    Ok(result?)
}

/// A run number for a URL: the number, or `latest`.
fn number(number: Option<i64>) -> String {
    number.map_or_else(|| "latest".to_owned(), |n| n.to_string())
}

impl Via {
    /// The running server of this home, or this process.
    pub async fn open(home: &Home) -> anyhow::Result<Via> {
        Ok(match crate::client::connect(home).await? {
            Some(client) => Via::Server(client),
            None => Via::Local(Service::new(
                engine::Engine::open_with(home.clone(), router::Router::new(), String::new(), server::backends())
                    .await?,
            )),
        })
    }

    pub async fn add_project(&self, request: &AddProject) -> anyhow::Result<ProjectRecord> {
        match self {
            Via::Server(client) => client.post("/projects", request).await,
            Via::Local(service) => {
                change(service, "POST", "/projects", StatusCode::CREATED, service.add_project(request).await).await
            }
        }
    }

    pub async fn projects(&self) -> anyhow::Result<Vec<ProjectRecord>> {
        match self {
            Via::Server(client) => client.get("/projects").await,
            Via::Local(service) => Ok(service.projects().await?),
        }
    }

    pub async fn remove_project(&self, project: &Name) -> anyhow::Result<()> {
        let path = format!("/projects/{project}");
        match self {
            Via::Server(client) => client.delete(&path).await,
            Via::Local(service) => {
                change(service, "DELETE", &path, StatusCode::NO_CONTENT, service.remove_project(project).await).await
            }
        }
    }

    pub async fn runs(&self, filter: &RunFilter) -> anyhow::Result<RunsPage> {
        match self {
            Via::Server(client) => {
                let mut query = Vec::new();
                if let Some(project) = &filter.project {
                    query.push(format!("project={project}"));
                }
                if let Some(limit) = filter.limit {
                    query.push(format!("limit={limit}"));
                }
                client.get(&format!("/runs?{}", query.join("&"))).await
            }
            Via::Local(service) => Ok(service.runs(filter).await?),
        }
    }

    pub async fn run(&self, project: &Name, run: Option<i64>) -> anyhow::Result<RunDetail> {
        match self {
            Via::Server(client) => client.get(&format!("/runs/{project}/{}", number(run))).await,
            Via::Local(service) => Ok(service.run(project, run).await?),
        }
    }

    pub async fn decide(
        &self,
        project: &Name,
        run: Option<i64>,
        approve: bool,
        decision: &Decision,
    ) -> anyhow::Result<RunDetail> {
        let path = format!("/runs/{project}/{}/{}", number(run), if approve { "approve" } else { "reject" });
        match self {
            Via::Server(client) => client.post(&path, decision).await,
            Via::Local(service) => {
                let decided = service.decide(project, run, approve, decision, &server::auth::Caller::local()).await;
                change(service, "POST", &path, StatusCode::OK, decided).await
            }
        }
    }

    pub async fn cancel(&self, project: &Name, run: Option<i64>) -> anyhow::Result<RunDetail> {
        let path = format!("/runs/{project}/{}/cancel", number(run));
        match self {
            Via::Server(client) => client.post(&path, &serde_json::json!({})).await,
            Via::Local(service) => {
                change(service, "POST", &path, StatusCode::OK, service.cancel(project, run).await).await
            }
        }
    }

    /// Each selected stage's log as it is now.
    pub async fn logs(&self, project: &Name, run: i64, stage: Option<&Name>) -> anyhow::Result<Vec<(String, String)>> {
        match self {
            Via::Server(client) => {
                let query = stage.map(|s| format!("?stage={s}")).unwrap_or_default();
                let logs: server::Logs = client.get(&format!("/runs/{project}/{run}/logs{query}")).await?;
                Ok(logs.stages.into_iter().map(|s| (s.stage, s.log)).collect())
            }
            Via::Local(service) => {
                let logs = service.logs(project, Some(run), stage).await?;
                Ok(logs.into_iter().map(|(name, log)| (name.to_string(), log)).collect())
            }
        }
    }

    pub async fn models(&self, group: Option<&Name>) -> anyhow::Result<Vec<ModelVersionRecord>> {
        match self {
            Via::Server(client) => {
                let query = group.map(|g| format!("?group={g}")).unwrap_or_default();
                client.get(&format!("/models{query}")).await
            }
            Via::Local(service) => Ok(service.models(group).await?),
        }
    }

    pub async fn endpoints(&self) -> anyhow::Result<Vec<EndpointView>> {
        match self {
            Via::Server(client) => client.get("/endpoints").await,
            Via::Local(service) => Ok(service.endpoints().await?),
        }
    }

    pub async fn delete_endpoint(&self, endpoint: &Name) -> anyhow::Result<()> {
        let path = format!("/endpoints/{endpoint}");
        match self {
            Via::Server(client) => client.delete(&path).await,
            Via::Local(service) => {
                change(service, "DELETE", &path, StatusCode::NO_CONTENT, service.delete_endpoint(endpoint).await).await
            }
        }
    }

    pub async fn deploy(&self, endpoint: &Name, request: &DeployRequest) -> anyhow::Result<Deployed> {
        let path = format!("/endpoints/{endpoint}/deploy");
        match self {
            Via::Server(client) => client.post(&path, request).await,
            Via::Local(service) => {
                change(service, "POST", &path, StatusCode::OK, service.deploy(endpoint, request).await).await
            }
        }
    }

    pub async fn history(&self, endpoint: &Name, at: Option<i64>) -> anyhow::Result<Vec<Served>> {
        match self {
            Via::Server(client) => {
                let at = at.map(|at| format!("?at={at}")).unwrap_or_default();
                client.get(&format!("/endpoints/{endpoint}/history{at}")).await
            }
            Via::Local(service) => Ok(service.history(endpoint, at).await?),
        }
    }

    pub async fn gc(&self, request: &GcRequest) -> anyhow::Result<engine::GcReport> {
        match self {
            Via::Server(client) => client.post("/gc", request).await,
            Via::Local(service) => change(service, "POST", "/gc", StatusCode::OK, service.gc(request).await).await,
        }
    }

    pub async fn drift(
        &self,
        endpoint: &Name,
        window: Option<usize>,
        threshold: Option<f64>,
    ) -> anyhow::Result<engine::DriftReport> {
        match self {
            Via::Server(client) => {
                let mut query = Vec::new();
                query.extend(window.map(|w| format!("window={w}")));
                query.extend(threshold.map(|t| format!("threshold={t}")));
                let query = if query.is_empty() { String::new() } else { format!("?{}", query.join("&")) };
                client.get(&format!("/endpoints/{endpoint}/drift{query}")).await
            }
            Via::Local(service) => Ok(service.drift(endpoint, window, threshold).await?),
        }
    }

    pub async fn set_weights(&self, endpoint: &Name, request: &WeightsRequest) -> anyhow::Result<EndpointView> {
        let path = format!("/endpoints/{endpoint}/weights");
        match self {
            Via::Server(client) => client.put(&path, request).await,
            Via::Local(service) => {
                change(service, "PUT", &path, StatusCode::OK, service.set_weights(endpoint, request).await).await
            }
        }
    }

    pub async fn create_token(&self, name: &Name, role: Role) -> anyhow::Result<CreatedToken> {
        match self {
            Via::Server(client) => client.post("/tokens", &serde_json::json!({ "name": name, "role": role })).await,
            Via::Local(service) => {
                change(service, "POST", "/tokens", StatusCode::CREATED, service.create_token(name, role).await).await
            }
        }
    }

    pub async fn tokens(&self) -> anyhow::Result<Vec<TokenRecord>> {
        match self {
            Via::Server(client) => client.get("/tokens").await,
            Via::Local(service) => Ok(service.tokens().await?),
        }
    }

    pub async fn revoke_token(&self, name: &Name) -> anyhow::Result<()> {
        let path = format!("/tokens/{name}");
        match self {
            Via::Server(client) => client.delete(&path).await,
            Via::Local(service) => {
                change(service, "DELETE", &path, StatusCode::NO_CONTENT, service.revoke_token(name).await).await
            }
        }
    }

    pub async fn events(&self, after: i64, project: Option<&Name>, limit: i64) -> anyhow::Result<EventsPage> {
        match self {
            Via::Server(client) => {
                let project = project.map(|p| format!("&project={p}")).unwrap_or_default();
                client.get(&format!("/events?after={after}&limit={limit}{project}")).await
            }
            Via::Local(service) => Ok(service.events(after, project, Some(limit)).await?),
        }
    }

    pub async fn audit(&self, limit: i64) -> anyhow::Result<AuditPage> {
        match self {
            Via::Server(client) => client.get(&format!("/audit?limit={limit}")).await,
            Via::Local(service) => {
                Ok(service.audit(&server::service::AuditQuery { limit: Some(limit), ..Default::default() }).await?)
            }
        }
    }

    /// The server's local registry; one this process started would stop as it exits.
    pub async fn registry(&self) -> anyhow::Result<server::service::Registry> {
        match self {
            Via::Server(client) => client.get("/registry").await,
            Via::Local(_) => Err(ServiceError::new(
                StatusCode::BAD_REQUEST,
                "no_server",
                "the local registry runs as long as the process that started it, and no server runs",
            )
            .hint("start `sagebrush server` (or `sagebrush up`) and ask again")
            .into()),
        }
    }

    /// Whether a server carries the operations out.
    pub fn is_server(&self) -> bool {
        matches!(self, Via::Server(_))
    }
}
