//! Where a command's operation is carried out: by the running server through its API, or, with
//! none, by the same service layer in this process. Both give the same types and the same errors.

use std::path::Path;

use engine::Home;
use names::Name;
use server::Service;
use server::service::{DeployRequest, Deployed, EndpointView, RunDetail, RunFilter, RunsPage};
use store::{ModelVersionRecord, ProjectRecord};

use crate::client::Client;

pub enum Via {
    Server(Client),
    Local(Service),
}

/// A run number for a URL: the number, or `latest`.
fn number(number: Option<i64>) -> String {
    number.map_or_else(|| "latest".to_owned(), |n| n.to_string())
}

impl Via {
    /// The running server of this home, or this process.
    pub async fn open(home: &Home) -> anyhow::Result<Via> {
        Ok(match server::running(home).await {
            Some(url) => Via::Server(Client::new(&url)?),
            None => Via::Local(Service::new(
                engine::Engine::open(home.clone(), router::Router::new(), String::new()).await?,
            )),
        })
    }

    pub async fn add_project(&self, path: &Path) -> anyhow::Result<ProjectRecord> {
        match self {
            Via::Server(client) => client.post("/projects", &serde_json::json!({ "path": path })).await,
            Via::Local(service) => Ok(service.add_project(path).await?),
        }
    }

    pub async fn projects(&self) -> anyhow::Result<Vec<ProjectRecord>> {
        match self {
            Via::Server(client) => client.get("/projects").await,
            Via::Local(service) => Ok(service.projects().await?),
        }
    }

    pub async fn remove_project(&self, project: &Name) -> anyhow::Result<()> {
        match self {
            Via::Server(client) => client.delete(&format!("/projects/{project}")).await,
            Via::Local(service) => Ok(service.remove_project(project).await?),
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

    pub async fn cancel(&self, project: &Name, run: Option<i64>) -> anyhow::Result<RunDetail> {
        match self {
            Via::Server(client) => {
                client.post(&format!("/runs/{project}/{}/cancel", number(run)), &serde_json::json!({})).await
            }
            Via::Local(service) => Ok(service.cancel(project, run).await?),
        }
    }

    /// Each selected stage's log as it is now, and whether the run has ended.
    pub async fn logs(
        &self,
        project: &Name,
        run: i64,
        stage: Option<&Name>,
    ) -> anyhow::Result<(Vec<(String, String)>, bool)> {
        match self {
            Via::Server(client) => {
                let query = stage.map(|s| format!("?stage={s}")).unwrap_or_default();
                let logs: server::Logs = client.get(&format!("/runs/{project}/{run}/logs{query}")).await?;
                Ok((logs.stages.into_iter().map(|s| (s.stage, s.log)).collect(), logs.finished))
            }
            Via::Local(service) => {
                let finished = service.run(project, Some(run)).await?.run.status.is_finished();
                let logs = service.logs(project, Some(run), stage).await?;
                Ok((logs.into_iter().map(|(name, log)| (name.to_string(), log)).collect(), finished))
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
        match self {
            Via::Server(client) => client.delete(&format!("/endpoints/{endpoint}")).await,
            Via::Local(service) => Ok(service.delete_endpoint(endpoint).await?),
        }
    }

    pub async fn deploy(&self, endpoint: &Name, request: &DeployRequest) -> anyhow::Result<Deployed> {
        match self {
            Via::Server(client) => client.post(&format!("/endpoints/{endpoint}/deploy"), request).await,
            Via::Local(service) => Ok(service.deploy(endpoint, request).await?),
        }
    }

    /// Whether a server carries the operations out.
    pub fn is_server(&self) -> bool {
        matches!(self, Via::Server(_))
    }
}
