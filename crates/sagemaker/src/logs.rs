//! A training job's CloudWatch log lines in the stage log: SageMaker writes each instance's output
//! to the stream `<job>/algo-<n>-<epoch>` of the group `/aws/sagemaker/TrainingJobs`.

use std::collections::BTreeMap;

use aws_sdk_cloudwatchlogs::Client;
use tokio::io::AsyncWrite;

use crate::training::write;
use crate::{Api, Error};

const GROUP: &str = "/aws/sagemaker/TrainingJobs";

/// What has been read of one job's streams.
pub(crate) struct JobLogs {
    client: Client,
    job: String,
    /// Each stream's forward token: where the next read starts.
    read: BTreeMap<String, Option<String>>,
    /// Reading failed once (the account does not allow it, say): said once, then not tried again.
    given_up: bool,
}

impl JobLogs {
    pub(crate) fn new(client: Client, job: &str) -> JobLogs {
        JobLogs { client, job: job.to_owned(), read: BTreeMap::new(), given_up: false }
    }

    /// Writes the lines written since the last call, each after its instance's name.
    pub(crate) async fn follow(&mut self, log: &mut (dyn AsyncWrite + Unpin + Send)) {
        if self.given_up {
            return;
        }
        if let Err(e) = self.read_new(log).await {
            self.given_up = true;
            write(log, &format!("the job's CloudWatch logs are not shown: {e}")).await;
        }
    }

    async fn read_new(&mut self, log: &mut (dyn AsyncWrite + Unpin + Send)) -> Result<(), Error> {
        let prefix = format!("{}/", self.job);
        let streams =
            self.client.describe_log_streams().log_group_name(GROUP).log_stream_name_prefix(&prefix).send().await;
        let streams = match streams {
            Ok(streams) => streams,
            // No instance has written yet.
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => return Ok(()),
            Err(e) => return Err(Error::sdk(Api::Logs, "DescribeLogStreams", e)),
        };
        for name in streams.log_streams().iter().filter_map(|s| s.log_stream_name()) {
            let host = instance(name.strip_prefix(&prefix).unwrap_or(name));
            let mut token = self.read.get(name).cloned().flatten();
            loop {
                let events = self
                    .client
                    .get_log_events()
                    .log_group_name(GROUP)
                    .log_stream_name(name)
                    .start_from_head(true)
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| Error::sdk(Api::Logs, "GetLogEvents", e))?;
                for message in events.events().iter().filter_map(|e| e.message()) {
                    write(log, &format!("[{host}] {}", message.trim_end())).await;
                }
                let next = events.next_forward_token().map(str::to_owned);
                // The end of the stream: no events, or the same token handed back.
                let done = events.events().is_empty() || next == token;
                token = next;
                if done {
                    break;
                }
            }
            self.read.insert(name.to_owned(), token);
        }
        Ok(())
    }
}

/// `algo-1` of `algo-1-1700000000`.
fn instance(stream: &str) -> &str {
    match stream.rsplit_once('-') {
        Some((host, epoch)) if epoch.len() >= 9 && epoch.chars().all(|c| c.is_ascii_digit()) => host,
        _ => stream,
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_stream_is_named_after_its_instance() {
        assert_eq!(super::instance("algo-1-1700000000"), "algo-1");
        assert_eq!(super::instance("algo-2"), "algo-2", "no epoch: the whole name");
    }
}
