//! What train and deploy stages share when they run on SageMaker: the choice of backend, the role
//! SageMaker assumes, and SageMaker's shape of instance type.

use super::{Cx, Item, StageItem, get};
use crate::Error;
use crate::spec::{Algorithm, Ecr, Registry};

/// Whether the stage's `backend` is `"sagemaker"` (`"local"`, the default, is this machine).
pub(super) fn chosen(s: &StageItem<'_, '_>) -> Result<bool, Error> {
    let cx = s.cx;
    let Some(backend) = get(s.table, "backend") else { return Ok(false) };
    match cx.string("backend", backend)?.as_str() {
        "local" => Ok(false),
        "sagemaker" => Ok(true),
        other => Err(cx.error(
            &backend.span(),
            format!("unknown backend \"{}\"", names::excerpt(other, 40)),
            Some("write backend = \"local\" (this machine) or \"sagemaker\"".to_owned()),
        )),
    }
}

/// Refuses the first of `keys` the stage sets: `why` says what the key belongs to and `hint` what to do.
pub(super) fn refuse(s: &StageItem<'_, '_>, keys: &[&str], why: &str, hint: &str) -> Result<(), Error> {
    match keys.iter().find_map(|k| get(s.table, k).map(|item| (k, item))) {
        Some((key, item)) => Err(s.cx.error(&item.span(), format!("`{key}` {why}"), Some(hint.to_owned()))),
        None => Ok(()),
    }
}

/// SageMaker runs container images: `[algorithm]` must name one.
pub(super) fn image_algorithm(s: &StageItem<'_, '_>, what: &str) -> Result<(), Error> {
    if matches!(s.pipeline.algorithm, Some(Algorithm::Image { .. })) {
        return Ok(());
    }
    let span = get(s.table, "backend").map_or_else(|| s.item.span(), |b| b.span());
    Err(s.cx.error(
        &span,
        format!("SageMaker runs container images, but [algorithm] names no image to {what}"),
        Some("add [algorithm] image = \"my-algorithm\" and a build stage that pushes it to ECR".to_owned()),
    ))
}

/// The required `role`, an IAM role ARN.
pub(super) fn role(s: &StageItem<'_, '_>) -> Result<String, Error> {
    let item = s.required("role", "\"arn:aws:iam::123456789012:role/SageMakerRole\"")?;
    let role = s.cx.string("role", item)?;
    if !is_role_arn(&role) {
        return Err(s.cx.error(
            &item.span(),
            format!("`role` = \"{}\" is not an IAM role ARN", names::excerpt(&role, 80)),
            Some("write the role SageMaker assumes, e.g. \"arn:aws:iam::123456789012:role/SageMakerRole\"".to_owned()),
        ));
    }
    Ok(role)
}

/// Refuses an `instance_type` not shaped like SageMaker's; which ones exist the backend says.
pub(super) fn instance_type(s: &StageItem<'_, '_>, instance_type: Option<&str>) -> Result<(), Error> {
    match instance_type {
        Some(text) if !is_ml_instance_type(text) => {
            let span = get(s.table, "instance_type").map_or_else(|| s.item.span(), |i| i.span());
            Err(s.cx.error(
                &span,
                format!("`instance_type` = \"{}\" is not a SageMaker instance type", names::excerpt(text, 40)),
                Some("SageMaker's types are ml.<family>.<size>, e.g. \"ml.m5.large\"".to_owned()),
            ))
        }
        _ => Ok(()),
    }
}

/// A build stage's `registry`: `"ecr"`, an ECR host (`<account>.dkr.ecr.<region>.amazonaws.com`), or any other `host[:port]`.
pub(super) fn registry(cx: &Cx<'_>, item: &Item<'_>) -> Result<Registry, Error> {
    let text = cx.string("registry", item)?;
    if text == "ecr" {
        return Ok(Registry::Ecr(Ecr { account: None, region: None }));
    }
    let host = text.split_once('/').map_or(text.as_str(), |(host, _)| host);
    if host != text || host.is_empty() || host.contains(char::is_whitespace) {
        return Err(cx.error(
            &item.span(),
            format!("`registry` = \"{}\" is not a registry host", names::excerpt(&text, 80)),
            Some(
                "write host[:port] (the image's name comes from [algorithm] image), or \"ecr\" for Amazon ECR"
                    .to_owned(),
            ),
        ));
    }
    match ecr_host(host) {
        Some(ecr) => Ok(Registry::Ecr(ecr)),
        None if host.contains(".amazonaws.com") => Err(cx.error(
            &item.span(),
            format!("`registry` = \"{}\" is not an ECR registry", names::excerpt(&text, 80)),
            Some(
                "ECR's are <12-digit account>.dkr.ecr.<region>.amazonaws.com, or write \"ecr\" for the AWS chain's"
                    .to_owned(),
            ),
        )),
        None => Ok(Registry::Host(text)),
    }
}

/// `<account>.dkr.ecr.<region>.amazonaws.com[.cn]` read as the account and region.
fn ecr_host(host: &str) -> Option<Ecr> {
    let rest = host.strip_suffix(".amazonaws.com").or_else(|| host.strip_suffix(".amazonaws.com.cn"))?;
    let (account, rest) = rest.split_once(".dkr.ecr.")?;
    let account_ok = account.len() == 12 && account.chars().all(|c| c.is_ascii_digit());
    let region_ok = !rest.is_empty() && rest.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    (account_ok && region_ok).then(|| Ecr { account: Some(account.to_owned()), region: Some(rest.to_owned()) })
}

/// SageMaker's `RoleArn` pattern: `arn:aws[-partition]:iam::<12 digits>:role/<path and name>`.
fn is_role_arn(text: &str) -> bool {
    let Some(rest) = text.strip_prefix("arn:aws") else { return false };
    let Some((partition, rest)) = rest.split_once(":iam::") else { return false };
    let Some((account, name)) = rest.split_once(":role/") else { return false };
    partition.chars().all(|c| c.is_ascii_lowercase() || c == '-')
        && account.len() == 12
        && account.chars().all(|c| c.is_ascii_digit())
        && !name.is_empty()
        && name.len() <= 2048
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "+=,.@-_/".contains(c))
}

/// `ml.<family>.<size>`.
fn is_ml_instance_type(text: &str) -> bool {
    let mut parts = text.split('.');
    let word =
        |p: Option<&str>| p.is_some_and(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'));
    parts.next() == Some("ml") && word(parts.next()) && word(parts.next()) && parts.next().is_none()
}
