//! Tags through SageMaker's API: AddTags, ListTags and DeleteTags on the ARN of a training job,
//! model, endpoint configuration, endpoint, model package group or model package made here, and
//! the `Tags` every Create of those takes.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{ACCOUNT, Fault, endpoints, page, validation};
use crate::service::{self, Service, Tags};

/// One tag, as SageMaker writes it.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct Tag {
    key: String,
    #[serde(default)]
    value: String,
}

/// A request's tags checked by SageMaker's rules, before anything is made.
pub(super) fn given(tags: &[Tag]) -> Result<Tags, Fault> {
    let pairs: Vec<(String, String)> = tags.iter().map(|t| (t.key.clone(), t.value.clone())).collect();
    Ok(service::checked_tags(&pairs)?)
}

/// Keeps the tags of a resource just made (`kind/name`, as its ARN ends), and only those.
pub(super) async fn keep(service: &Service, resource: &str, tags: &Tags) -> Result<(), Fault> {
    Ok(service.set_tags(resource, tags).await?)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct AddTagsInput {
    resource_arn: String,
    tags: Vec<Tag>,
}

pub(super) async fn add(service: &Service, input: AddTagsInput) -> Result<Value, Fault> {
    let tags = given(&input.tags)?;
    let resource = resource(service, &input.resource_arn).await?;
    service.add_tags(&resource, &tags).await?;
    Ok(json!({ "Tags": input.tags }))
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct ListTagsInput {
    resource_arn: String,
    max_results: Option<usize>,
    next_token: Option<String>,
}

pub(super) async fn list(service: &Service, input: ListTagsInput) -> Result<Value, Fault> {
    let resource = resource(service, &input.resource_arn).await?;
    let tags: Vec<Tag> = service.tags(&resource).await?.into_iter().map(|(key, value)| Tag { key, value }).collect();
    let (shown, next_token) = page(&tags, input.max_results, input.next_token.as_deref())?;
    let mut output = json!({ "Tags": shown });
    if let Some(token) = next_token {
        output["NextToken"] = json!(token);
    }
    Ok(output)
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(super) struct DeleteTagsInput {
    resource_arn: String,
    tag_keys: Vec<String>,
}

pub(super) async fn delete(service: &Service, input: DeleteTagsInput) -> Result<Value, Fault> {
    let resource = resource(service, &input.resource_arn).await?;
    service.delete_tags(&resource, &input.tag_keys).await?;
    Ok(json!({}))
}

/// What an ARN of this server names, `<kind>/<name>`, once it is known to exist.
async fn resource(service: &Service, arn: &str) -> Result<String, Fault> {
    let shown = names::excerpt(arn, 200);
    let not_ours = || {
        validation(format!(
            "{shown} is not the ARN of a resource here: arn:aws:sagemaker:<region>:{ACCOUNT}:<kind>/<name>"
        ))
    };
    let rest = arn.strip_prefix("arn:aws:sagemaker:").ok_or_else(not_ours)?;
    let mut parts = rest.splitn(3, ':');
    let (Some(_region), Some(ACCOUNT), Some(resource)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(not_ours());
    };
    let (kind, name) = resource.split_once('/').ok_or_else(not_ours)?;
    let named = |text: &str| service::name(kind, text).map_err(|_| not_ours());
    let found = match kind {
        "training-job" => service.training_job(&named(name)?).await.map(drop),
        "model" => service.sagemaker_model(&named(name)?).await.map(drop),
        "endpoint-config" => service.endpoint_config(&named(name)?).await.map(drop),
        "model-package-group" => service.package_group(&named(name)?).await.map(drop),
        "model-package" => {
            let (group, version) = name.rsplit_once('/').ok_or_else(not_ours)?;
            let version = version.parse().map_err(|_| not_ours())?;
            service.model_package(&named(group)?, version).await.map(drop)
        }
        "endpoint" => match endpoints::known(service, &named(name)?).await? {
            true => Ok(()),
            false => return Err(validation(format!("Could not find resource {shown}."))),
        },
        _ => {
            return Err(validation(format!(
                "{kind} is not a kind of resource here; tags go on a training-job, model, endpoint-config, \
                 endpoint, model-package-group or model-package"
            )));
        }
    };
    match found {
        Ok(()) => Ok(resource.to_owned()),
        Err(e) if e.status == StatusCode::NOT_FOUND => Err(validation(format!("Could not find resource {shown}."))),
        Err(e) => Err(e.into()),
    }
}
