//! SageMaker's model registry through its API: Create, Describe and List ModelPackageGroup;
//! Create, Describe, List and Update ModelPackage (versioned packages), over the registry.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use store::{ModelApprovalStatus, ModelVersionRecord};

use super::tags::{self, Tag};
use super::{ACCOUNT, Fault, arn, constraint, page, seconds, validation};
use crate::ServiceError;
use crate::auth::Caller;
use crate::service::{self, Service};

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreateGroupInput {
    model_package_group_name: String,
    model_package_group_description: Option<String>,
    #[serde(default)]
    tags: Vec<Tag>,
}

pub(super) async fn create_group(service: &Service, region: &str, input: CreateGroupInput) -> Result<Value, Fault> {
    let name = group_name(&input.model_package_group_name)?;
    let tags = tags::given(&input.tags)?;
    service.create_package_group(&name, input.model_package_group_description).await.map_err(|e| {
        if e.code == "resource_in_use" {
            validation(format!("Model Package Group already exists: {}", arn(region, "model-package-group", &name)))
        } else {
            Fault::from(e)
        }
    })?;
    tags::keep(service, &format!("model-package-group/{name}"), &tags).await?;
    Ok(json!({ "ModelPackageGroupArn": arn(region, "model-package-group", &name) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct GroupInput {
    model_package_group_name: String,
}

pub(super) async fn describe_group(service: &Service, region: &str, input: GroupInput) -> Result<Value, Fault> {
    let name = group_name(&input.model_package_group_name)?;
    let group = service.package_group(&name).await.map_err(|e| missing_group(e, &name))?;
    let mut output = json!({
        "ModelPackageGroupName": group.name,
        "ModelPackageGroupArn": arn(region, "model-package-group", &group.name),
        "CreationTime": seconds(group.created_at),
        "CreatedBy": {},
        "ModelPackageGroupStatus": "Completed",
    });
    if let Some(description) = group.description {
        output["ModelPackageGroupDescription"] = description.into();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListGroupsInput {
    name_contains: Option<String>,
    max_results: Option<usize>,
    next_token: Option<String>,
    sort_order: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct GroupSummary {
    model_package_group_name: String,
    model_package_group_arn: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    model_package_group_description: Option<String>,
    creation_time: f64,
    model_package_group_status: &'static str,
}

pub(super) async fn list_groups(service: &Service, region: &str, input: ListGroupsInput) -> Result<Value, Fault> {
    let mut groups = service.package_groups().await?;
    groups.sort_by_key(|g| g.created_at);
    if input.sort_order.as_deref() != Some("Ascending") {
        groups.reverse();
    }
    let summaries: Vec<GroupSummary> = groups
        .into_iter()
        .filter(|g| input.name_contains.as_deref().is_none_or(|part| g.name.contains(part)))
        .map(|g| GroupSummary {
            model_package_group_arn: arn(region, "model-package-group", &g.name),
            creation_time: seconds(g.created_at),
            model_package_group_description: g.description,
            model_package_group_name: g.name,
            model_package_group_status: "Completed",
        })
        .collect();
    let (page, next) = page(&summaries, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ "ModelPackageGroupSummaryList": page });
    if let Some(next) = next {
        output["NextToken"] = next.into();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct CreatePackageInput {
    model_package_group_name: Option<String>,
    model_package_name: Option<String>,
    model_package_description: Option<String>,
    model_approval_status: Option<ModelApprovalStatus>,
    inference_specification: Option<InferenceSpecification>,
    #[serde(default)]
    tags: Vec<Tag>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct InferenceSpecification {
    containers: Vec<Container>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct Container {
    image: String,
    model_data_url: Option<String>,
}

pub(super) async fn create_package(service: &Service, region: &str, input: CreatePackageInput) -> Result<Value, Fault> {
    let Some(group) = &input.model_package_group_name else {
        let what =
            if input.model_package_name.is_some() { "an unversioned package" } else { "a package without a group" };
        return Err(validation(format!(
            "sagebrush keeps versioned model packages only, not {what}: give ModelPackageGroupName"
        )));
    };
    let group = group_name(group)?;
    let tags = tags::given(&input.tags)?;
    let containers = input.inference_specification.map(|spec| spec.containers).unwrap_or_default();
    let [Container { image, model_data_url: Some(url) }] = containers.as_slice() else {
        return Err(validation(
            "InferenceSpecification.Containers holds one container with an Image and a ModelDataUrl",
        ));
    };
    let status = input.model_approval_status.unwrap_or(ModelApprovalStatus::PendingManualApproval);
    let description = input.model_package_description.as_deref();
    let version = service
        .create_model_package(&group, image, url, status, description)
        .await
        .map_err(|e| missing_group(e, &group))?;
    tags::keep(service, &format!("model-package/{}/{}", version.model_group, version.version), &tags).await?;
    Ok(json!({ "ModelPackageArn": package_arn(region, &version) }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct PackageInput {
    model_package_name: String,
}

pub(super) async fn describe_package(service: &Service, region: &str, input: PackageInput) -> Result<Value, Fault> {
    let (group, number) = versioned(&input.model_package_name)?;
    let version =
        service.model_package(&group, number).await.map_err(|e| missing_package(e, &input.model_package_name))?;
    let image = version.algorithm.strip_prefix("image:").unwrap_or(&version.algorithm);
    let mut output = json!({
        "ModelPackageName": version.model_group,
        "ModelPackageGroupName": version.model_group,
        "ModelPackageVersion": version.version,
        "ModelPackageArn": package_arn(region, &version),
        "CreationTime": seconds(version.created_at),
        "InferenceSpecification": {
            "Containers": [{ "Image": image, "ModelDataUrl": version.artifact_uri }],
            "SupportedContentTypes": ["text/csv"],
            "SupportedResponseMIMETypes": ["text/csv"],
        },
        "ModelPackageStatus": "Completed",
        "ModelPackageStatusDetails": { "ValidationStatuses": [], "ImageScanStatuses": [] },
        "CertifyForMarketplace": false,
        "ModelApprovalStatus": version.approval_status,
    });
    if let Some(description) = version.lineage.get("model_package_description").filter(|d| !d.is_null()) {
        output["ModelPackageDescription"] = description.clone();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListPackagesInput {
    model_package_group_name: Option<String>,
    model_approval_status: Option<ModelApprovalStatus>,
    max_results: Option<usize>,
    next_token: Option<String>,
    sort_order: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct PackageSummary {
    model_package_name: String,
    model_package_group_name: String,
    model_package_version: i64,
    model_package_arn: String,
    creation_time: f64,
    model_package_status: &'static str,
    model_approval_status: ModelApprovalStatus,
}

pub(super) async fn list_packages(service: &Service, region: &str, input: ListPackagesInput) -> Result<Value, Fault> {
    let group = input.model_package_group_name.as_deref().map(group_name).transpose()?;
    let mut versions = service.model_packages(group.as_ref()).await?;
    versions.sort_by_key(|v| (v.created_at, v.version));
    if input.sort_order.as_deref() == Some("Descending") {
        versions.reverse();
    }
    let summaries: Vec<PackageSummary> = versions
        .iter()
        .filter(|v| input.model_approval_status.is_none_or(|status| status == v.approval_status))
        .map(|v| PackageSummary {
            model_package_name: v.model_group.clone(),
            model_package_group_name: v.model_group.clone(),
            model_package_version: v.version,
            model_package_arn: package_arn(region, v),
            creation_time: seconds(v.created_at),
            model_package_status: "Completed",
            model_approval_status: v.approval_status,
        })
        .collect();
    let (page, next) = page(&summaries, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ "ModelPackageSummaryList": page });
    if let Some(next) = next {
        output["NextToken"] = next.into();
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct UpdatePackageInput {
    model_package_arn: String,
    model_approval_status: Option<ModelApprovalStatus>,
    approval_description: Option<String>,
}

pub(super) async fn update_package(
    service: &Service,
    caller: &Caller,
    region: &str,
    input: UpdatePackageInput,
) -> Result<Value, Fault> {
    let (group, number) = versioned(&input.model_package_arn)?;
    let Some(status) = input.model_approval_status else {
        return Err(validation("sagebrush updates a package's ModelApprovalStatus only: give it"));
    };
    let description = input.approval_description.as_deref();
    let version = service
        .set_package_approval(&group, number, status, description, caller)
        .await
        .map_err(|e| missing_package(e, &input.model_package_arn))?;
    Ok(json!({ "ModelPackageArn": package_arn(region, &version) }))
}

/// `arn:aws:sagemaker:<region>:<account>:model-package/<group>/<version>`.
fn package_arn(region: &str, version: &ModelVersionRecord) -> String {
    arn(region, "model-package", &format!("{}/{}", version.model_group, version.version))
}

/// The group and version of a versioned package's ARN (or of `<group>/<version>`).
fn versioned(text: &str) -> Result<(names::Name, i64), Fault> {
    let path = match text.split_once(":model-package/") {
        Some((prefix, path)) if prefix.starts_with("arn:aws:sagemaker:") && prefix.ends_with(ACCOUNT) => path,
        Some(_) => {
            return Err(validation(format!(
                "{} is not a model package of account {ACCOUNT}",
                names::excerpt(text, 200)
            )));
        }
        None => text,
    };
    let parsed = path
        .rsplit_once('/')
        .and_then(|(group, version)| Some((names::Name::parse(group).ok()?, version.parse().ok()?)));
    parsed.ok_or_else(|| {
        validation(format!(
            "{} names no versioned model package: give its ARN, arn:aws:sagemaker:<region>:{ACCOUNT}:model-package/<group>/<version>",
            names::excerpt(text, 200)
        ))
    })
}

fn group_name(text: &str) -> Result<names::Name, Fault> {
    service::name("model package group", text).map_err(|e| constraint(text, "modelPackageGroupName", &e))
}

fn missing_group(e: ServiceError, name: &str) -> Fault {
    if e.status == axum::http::StatusCode::NOT_FOUND && e.message.contains("model package group") {
        validation(format!("ModelPackageGroup {name} does not exist."))
    } else {
        Fault::from(e)
    }
}

fn missing_package(e: ServiceError, name: &str) -> Fault {
    if e.status == axum::http::StatusCode::NOT_FOUND {
        validation(format!("ModelPackage {} does not exist.", names::excerpt(name, 200)))
    } else {
        Fault::from(e)
    }
}
