//! The build stage: build the algorithm's image, tag it `<registry>/<image>:<run>`, push it, record its digest and SBOM.

use pipeline::{Registry, Resolved, StageKind};

use super::outputs::ImageOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;
use crate::{Engine, Error};

/// Refuses, before the run is recorded, a build stage that pushes to ECR in a build without AWS.
pub(crate) fn check(engine: &Engine, resolved: &Resolved) -> Result<(), Error> {
    for stage in &resolved.stages {
        if let StageKind::Build { registry: Registry::Ecr(_), .. } = &stage.kind
            && engine.inner.backends.ecr.is_none()
        {
            return Err(Error::Invalid(format!(
                "stage `{}`: registry = \"ecr\" needs a sagebrush built with AWS: `cargo build --release --features aws`",
                stage.name
            )));
        }
    }
    Ok(())
}

pub(crate) async fn run(
    context: &mut RunContext,
    image: &str,
    build_context: &str,
    registry: &Registry,
    log: &mut Log,
) -> Result<ImageOutput, StageFailure> {
    let dir = context.source_dir.join(build_context);
    if !dir.join("Dockerfile").is_file() {
        return Err(StageFailure::failed(format!(
            "{} has no Dockerfile; set the build stage's `context` to the folder that has one",
            dir.display()
        )));
    }
    let images = context.engine.inner.backends.images.clone();
    images.check().await.map_err(|e| StageFailure::failed(e.to_string()))?;
    let failed = |e: &dyn std::fmt::Display| StageFailure::failed(e.to_string());
    let (registry, login) = match registry {
        Registry::Local => (context.engine.local_registry().await.map_err(|e| failed(&e))?, None),
        Registry::Host(host) => (host.clone(), None),
        Registry::Ecr(ecr) => {
            let backend = context.engine.inner.backends.ecr.clone().ok_or_else(|| failed(&"no ECR in this build"))?;
            let login = backend.prepare(ecr, image, log).await.map_err(|e| failed(&e))?;
            (login.registry.clone(), Some(login))
        }
    };
    // What the service pulls is named after the registry, wherever the bytes went.
    let pushed_to = login.as_ref().map_or(registry.as_str(), |l| l.push_to.as_str());
    let repository = format!("{pushed_to}/{image}");
    let tag = format!("{repository}:{}", context.run.number);
    line(log, &format!("building {tag} from {}", dir.display())).await;
    images.build(&dir, &tag, log).await.map_err(|e| StageFailure::failed(format!("{e}; see the stage log")))?;
    line(log, &format!("pushing {tag}")).await;
    let run_tag = context.run.number.to_string();
    images
        .push(&repository, &run_tag, login.as_ref(), log)
        .await
        .map_err(|e| StageFailure::failed(format!("the image could not be pushed to {pushed_to}: {e}")))?;
    let (_, digests) = images.inspect(&tag).await.map_err(|e| failed(&e))?;
    let prefix = format!("{repository}@");
    let Some(digest) = digests.iter().find_map(|d| d.strip_prefix(&prefix)) else {
        return Err(StageFailure::failed(format!("{pushed_to} returned no digest for {tag}")));
    };
    line(log, &format!("pushed {tag} ({digest})")).await;
    let output = describe_image(context, &tag, log).await?;
    Ok(ImageOutput {
        reference: Some(format!("{registry}/{image}@{digest}")),
        digest: Some(digest.to_owned()),
        registry: Some(registry),
        ..output
    })
}

/// The image's size and its SBOM (stored as `<project>-<run>/sbom.json`), for lineage and the gate.
pub(crate) async fn describe_image(
    context: &RunContext,
    image: &str,
    log: &mut Log,
) -> Result<ImageOutput, StageFailure> {
    let failed = |e: &dyn std::fmt::Display| StageFailure::failed(format!("describing {image}: {e}"));
    let images = &context.engine.inner.backends.images;
    let (size, _) = images.inspect(image).await.map_err(|e| failed(&e))?;
    let sbom = images.sbom(image, &context.engine.container_labels()).await.map_err(|e| failed(&e))?;
    let key = format!("{}-{}/sbom.json", context.run.project, context.run.number);
    let document = serde_json::to_vec_pretty(&sbom.cyclonedx()).map_err(|e| failed(&e))?;
    let stored = context.engine.inner.artifacts.put_bytes(&key, document).await.map_err(|e| failed(&e))?;
    let packages = sbom.components.iter().filter(|c| c.kind != "file").count();
    line(log, &format!("{image}: {size} bytes, {packages} packages; SBOM at {}", stored.uri)).await;
    Ok(ImageOutput {
        image: image.to_owned(),
        size_bytes: size,
        packages: packages as u64,
        sbom_uri: stored.uri,
        sbom_sha256: stored.sha256,
        reference: None,
        digest: None,
        registry: None,
    })
}
