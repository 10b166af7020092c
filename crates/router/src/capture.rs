//! Data capture: a sampled share of an endpoint's requests and answers, as JSON lines in rotating files.
//!
//! The request path only samples and hands a record to a channel; a task writes the files. When the
//! writer falls behind, records are dropped rather than slowing requests down.

use std::path::PathBuf;

use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;

/// Records waiting for the writer; past this, new ones are dropped.
const QUEUE: usize = 4096;

/// Where and how much of an endpoint's traffic is captured.
#[derive(Clone, Debug)]
pub struct CaptureConfig {
    /// The folder the `capture-*.jsonl` files go to.
    pub dir: PathBuf,
    /// The share of requests captured, 0 to 1.
    pub share: f64,
    /// A file is closed and a new one started past this size.
    pub max_file_bytes: u64,
    /// The newest files kept; older ones are deleted.
    pub keep_files: usize,
}

/// A running capture: sampling on the request path, writing on its own task.
pub struct Capture {
    share: f64,
    sender: mpsc::Sender<serde_json::Value>,
}

impl Capture {
    /// Starts the writer task (on the current tokio runtime).
    pub fn start(config: CaptureConfig) -> Capture {
        let (sender, receiver) = mpsc::channel(QUEUE);
        let share = config.share;
        tokio::spawn(write(config, receiver));
        Capture { share, sender }
    }

    /// Whether this request is one of the captured share.
    pub fn sampled(&self) -> bool {
        self.share > 0.0 && fastrand::f64() < self.share
    }

    /// Queues one record; drops it when the writer is behind.
    pub fn record(&self, record: serde_json::Value) {
        let _ = self.sender.try_send(record);
    }
}

async fn write(config: CaptureConfig, mut records: mpsc::Receiver<serde_json::Value>) {
    if let Err(e) = tokio::fs::create_dir_all(&config.dir).await {
        return tracing::warn!("data capture is off: cannot create {}: {e}", config.dir.display());
    }
    let mut current: Option<(tokio::fs::File, u64)> = None;
    let mut sequence = 0u64;
    while let Some(record) = records.recv().await {
        let mut line = record.to_string();
        line.push('\n');
        if current.as_ref().is_none_or(|(_, size)| size + line.len() as u64 > config.max_file_bytes) {
            sequence += 1;
            let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis());
            let path = config.dir.join(format!("capture-{ms:013}-{sequence:06}.jsonl"));
            match tokio::fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&path).await {
                Ok(file) => current = Some((file, 0)),
                Err(e) => {
                    tracing::warn!("data capture: cannot create {}: {e}", path.display());
                    continue;
                }
            }
            prune(&config).await;
        }
        if let Some((file, size)) = current.as_mut()
            && file.write_all(line.as_bytes()).await.is_ok()
        {
            let _ = file.flush().await;
            *size += line.len() as u64;
        }
    }
}

/// Deletes all but the newest `keep_files` capture files (their names sort by time).
async fn prune(config: &CaptureConfig) {
    let Ok(mut entries) = tokio::fs::read_dir(&config.dir).await else { return };
    let mut files = Vec::new();
    while let Ok(Some(entry)) = entries.next_entry().await {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("capture-") && name.ends_with(".jsonl") {
            files.push(entry.path());
        }
    }
    files.sort();
    let excess = files.len().saturating_sub(config.keep_files.max(1));
    for old in &files[..excess] {
        let _ = tokio::fs::remove_file(old).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn rotates_files_and_keeps_the_newest() {
        let dir = tempfile::tempdir().unwrap();
        let capture = Capture::start(CaptureConfig {
            dir: dir.path().to_owned(),
            share: 1.0,
            max_file_bytes: 200,
            keep_files: 3,
        });
        for i in 0..100 {
            capture.record(serde_json::json!({ "n": i, "pad": "x".repeat(50) }));
        }
        drop(capture);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let last_line = loop {
            let mut files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
            files.sort();
            let last = files.last().map(|f| std::fs::read_to_string(f).unwrap()).unwrap_or_default();
            if last.contains("\"n\":99") {
                assert_eq!(files.len(), 3, "{files:?}");
                for file in &files {
                    assert!(std::fs::metadata(file).unwrap().len() <= 200);
                }
                break last.lines().last().unwrap().to_owned();
            }
            assert!(std::time::Instant::now() < deadline, "the writer did not catch up");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        };
        assert!(last_line.starts_with('{'));
    }
}
