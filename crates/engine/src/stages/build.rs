//! The build stage: build the algorithm's image, tag it `<registry>/<image>:<run>`, push it, record its digest and SBOM.

use super::outputs::ImageOutput;
use super::{Log, StageFailure, line};
use crate::run::RunContext;

pub(crate) async fn run(
    context: &mut RunContext,
    image: &str,
    build_context: &str,
    registry: Option<&str>,
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
    let registry = match registry {
        Some(registry) => registry.to_owned(),
        None => context.engine.local_registry().await.map_err(|e| StageFailure::failed(e.to_string()))?,
    };
    let repository = format!("{registry}/{image}");
    let tag = format!("{repository}:{}", context.run.number);
    line(log, &format!("building {tag} from {}", dir.display())).await;
    images.build(&dir, &tag, log).await.map_err(|e| StageFailure::failed(format!("{e}; see the stage log")))?;
    line(log, &format!("pushing {tag}")).await;
    let run_tag = context.run.number.to_string();
    images
        .push(&repository, &run_tag, log)
        .await
        .map_err(|e| StageFailure::failed(format!("the image could not be pushed to {registry}: {e}")))?;
    let (_, digests) = images.inspect(&tag).await.map_err(|e| StageFailure::failed(e.to_string()))?;
    let prefix = format!("{repository}@");
    let Some(reference) = digests.iter().find(|d| d.starts_with(&prefix)) else {
        return Err(StageFailure::failed(format!("{registry} returned no digest for {tag}")));
    };
    let digest = reference.trim_start_matches(&prefix);
    line(log, &format!("pushed {tag} ({digest})")).await;
    let output = describe_image(context, &tag, log).await?;
    Ok(ImageOutput {
        reference: Some(reference.clone()),
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
