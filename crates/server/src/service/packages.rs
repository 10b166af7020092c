//! SageMaker's model registry as sagebrush's: a model package group is a model group, and a
//! versioned model package is one of its registered versions, with the same approval status. So
//! the versions pipelines register are packages too, and approving a package through SageMaker's
//! API decides the approval a run waits on, as `sagebrush approve` would.

use names::Name;
use serde::{Deserialize, Serialize};
use serde_json::json;
use store::{ModelApprovalStatus, ModelVersionRecord, ResourceKind};

use super::hosting::{in_use, invalid, not_found, to_body};
use super::{Result, Service};
use crate::auth::Caller;

/// A model package group: its name, its description, and when it began.
#[derive(Clone, Debug)]
pub struct PackageGroup {
    pub name: String,
    pub description: Option<String>,
    /// When CreateModelPackageGroup made it, or its first version was registered (ms).
    pub created_at: i64,
}

#[derive(Serialize, Deserialize)]
struct GroupBody {
    description: Option<String>,
}

impl Service {
    pub async fn create_package_group(&self, name: &Name, description: Option<String>) -> Result<()> {
        let store = self.engine.store();
        let in_use = || in_use(format!("a model package group named {name} exists already"));
        // A group a pipeline registered versions in exists without CreateModelPackageGroup.
        if !store.model_versions(Some(name)).await?.is_empty() {
            return Err(in_use());
        }
        if !store.create_resource(ResourceKind::ModelPackageGroup, name, &to_body(&GroupBody { description })).await? {
            return Err(in_use());
        }
        Ok(())
    }

    /// Every group: those CreateModelPackageGroup made, and those a version was registered in.
    pub async fn package_groups(&self) -> Result<Vec<PackageGroup>> {
        let store = self.engine.store();
        let kept: Vec<(_, GroupBody)> = self.all_kept(ResourceKind::ModelPackageGroup).await?;
        let mut groups: Vec<PackageGroup> = kept
            .into_iter()
            .map(|(record, group)| PackageGroup {
                name: record.name,
                description: group.description,
                created_at: record.created_at,
            })
            .collect();
        for version in store.model_versions(None).await? {
            match groups.iter_mut().find(|g| g.name == version.model_group) {
                Some(group) => group.created_at = group.created_at.min(version.created_at),
                None => groups.push(PackageGroup {
                    name: version.model_group.clone(),
                    description: None,
                    created_at: version.created_at,
                }),
            }
        }
        Ok(groups)
    }

    pub async fn package_group(&self, name: &Name) -> Result<PackageGroup> {
        self.package_groups()
            .await?
            .into_iter()
            .find(|g| g.name == name.as_str())
            .ok_or_else(|| not_found("model package group", name))
    }

    /// Registers a training job's model as the group's next version.
    pub async fn create_model_package(
        &self,
        group: &Name,
        image: &str,
        model_data_url: &str,
        status: ModelApprovalStatus,
        description: Option<&str>,
    ) -> Result<ModelVersionRecord> {
        self.package_group(group).await?;
        let lineage = json!({ "model_package_description": description });
        self.register_trained(group, image, model_data_url, status, lineage).await
    }

    /// The group's versions, newest first; every group's when none is named.
    pub async fn model_packages(&self, group: Option<&Name>) -> Result<Vec<ModelVersionRecord>> {
        Ok(self.engine.store().model_versions(group.map(Name::as_str)).await?)
    }

    pub async fn model_package(&self, group: &Name, version: i64) -> Result<ModelVersionRecord> {
        Ok(self.engine.store().model_version(group, version).await?)
    }

    /// Sets a version's approval status. A version a run's approval stage waits on is decided
    /// there, so the run goes on (or fails) as with `sagebrush approve`.
    pub async fn set_package_approval(
        &self,
        group: &Name,
        version: i64,
        status: ModelApprovalStatus,
        description: Option<&str>,
        caller: &Caller,
    ) -> Result<ModelVersionRecord> {
        let store = self.engine.store();
        store.model_version(group, version).await?;
        let waiting = store.pending_approval_of(group, version).await?;
        match (waiting, status) {
            (Some(approval), ModelApprovalStatus::Approved | ModelApprovalStatus::Rejected) => {
                let reason = description.unwrap_or("UpdateModelPackage");
                let approve = status == ModelApprovalStatus::Approved;
                self.engine
                    .decide(approval.run_id, approve, &caller.name, names::excerpt(reason, 2000).as_ref())
                    .await?;
            }
            (Some(_), ModelApprovalStatus::PendingManualApproval) => {}
            (None, _) => {
                if !store.set_model_approval_status(group, version, status).await? {
                    return Err(invalid(format!("{group} has no version {version}")));
                }
            }
        }
        Ok(store.model_version(group, version).await?)
    }
}
