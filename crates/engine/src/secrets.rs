//! Secret parameters: read when a run starts (never stored), handed to shell stages and training
//! jobs as environment variables, and replaced by `***` in everything a run writes: stage logs, reasons, records.

use pipeline::{Resolved, Value};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::Error;

pub(crate) const MASK: &str = "***";

/// The values of a run's secret parameters, each with the environment variable that carries it.
#[derive(Default)]
pub(crate) struct Secrets {
    values: Vec<(String, String)>,
}

impl Secrets {
    /// Reads every secret parameter of `resolved` from where it names.
    pub fn read(resolved: &Resolved) -> Result<Secrets, Error> {
        let mut values = Vec::new();
        for (name, value) in &resolved.parameters {
            if let Value::Secret(source) = value {
                let secret = source
                    .read()
                    .map_err(|why| Error::Invalid(format!("secret parameter `{name}` ({source}): {why}")))?;
                values.push((env_name(name), secret));
            }
        }
        // Longest first, so a secret that contains another is masked whole.
        values.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Ok(Secrets { values })
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `(variable, value)` for a stage's environment.
    pub fn env(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// `text` with every secret replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        self.values.iter().fold(text.to_owned(), |text, (_, value)| text.replace(value.as_str(), MASK))
    }

    /// Copies `reader` to `writer` with every secret replaced, a line at a time so a log stays live;
    /// a secret split between two reads is still found, because the unwritten tail (at most one
    /// secret's length) is kept until it can no longer be the start of one.
    pub async fn copy_masked(
        &self,
        mut reader: impl AsyncRead + Unpin,
        mut writer: impl AsyncWrite + Unpin,
    ) -> std::io::Result<()> {
        let longest = self.values.first().map_or(1, |(_, value)| value.len());
        // A secret with a newline in it (a PEM key) can straddle a line, so then no line is safe to write early.
        let by_line = !self.values.iter().any(|(_, value)| value.contains('\n'));
        let mut pending: Vec<u8> = Vec::new();
        let mut chunk = vec![0u8; 8192];
        loop {
            let read = reader.read(&mut chunk).await?;
            if read == 0 {
                writer.write_all(&self.mask_bytes(&pending)).await?;
                return writer.flush().await;
            }
            pending.extend_from_slice(&chunk[..read]);
            let masked = self.mask_bytes(&pending);
            // Everything up to the last newline, or all but what could begin a secret.
            let after_newline = masked.iter().rposition(|b| *b == b'\n').map(|newline| masked.len() - newline - 1);
            let keep = match after_newline {
                Some(after) if by_line => after,
                _ => masked.len(),
            };
            let keep = keep.min(longest - 1);
            let ready = masked.len() - keep;
            writer.write_all(&masked[..ready]).await?;
            writer.flush().await?;
            pending = masked[ready..].to_vec();
        }
    }

    fn mask_bytes(&self, bytes: &[u8]) -> Vec<u8> {
        let mut out = bytes.to_vec();
        for (_, value) in &self.values {
            out = replace_all(&out, value.as_bytes(), MASK.as_bytes());
        }
        out
    }
}

/// The environment variable a secret parameter reaches stages as: its name in upper case.
pub(crate) fn env_name(parameter: &str) -> String {
    parameter.to_ascii_uppercase()
}

fn replace_all(haystack: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut rest = haystack;
    while let Some(at) = rest.windows(needle.len()).position(|w| w == needle) {
        out.extend_from_slice(&rest[..at]);
        out.extend_from_slice(with);
        rest = &rest[at + needle.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secrets(values: &[&str]) -> Secrets {
        let mut values: Vec<(String, String)> = values.iter().map(|v| ("S".to_owned(), (*v).to_owned())).collect();
        values.sort_by_key(|(_, value)| std::cmp::Reverse(value.len()));
        Secrets { values }
    }

    #[test]
    fn text_is_masked_longest_first() {
        let s = secrets(&["abc", "abcdef"]);
        assert_eq!(s.mask("x abcdef y abc z"), "x *** y *** z");
    }

    /// A reader that hands out its bytes a few at a time, as a pipe does.
    struct Trickle(Vec<u8>, usize);

    impl AsyncRead for Trickle {
        fn poll_read(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &mut tokio::io::ReadBuf<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            let n = self.1.min(self.0.len()).min(buf.remaining());
            let head: Vec<u8> = self.0.drain(..n).collect();
            buf.put_slice(&head);
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn a_secret_split_between_reads_is_masked() {
        let s = secrets(&["hunter2-secret"]);
        let text = "line one\ntoken=hunter2-secret and hunter2-secret\nhunter2-secret".repeat(3);
        for step in [1, 2, 3, 5, 7, 13, 64] {
            let mut out = Vec::new();
            let pem = secrets(&["-----BEGIN\nkey-----"]);
            pem.copy_masked(Trickle(b"a -----BEGIN\nkey----- b\n".to_vec(), step), &mut out).await.unwrap();
            assert_eq!(String::from_utf8(out).unwrap(), "a *** b\n", "step {step}");
            let mut out = Vec::new();
            s.copy_masked(Trickle(text.as_bytes().to_vec(), step), &mut out).await.unwrap();
            let out = String::from_utf8(out).unwrap();
            assert!(!out.contains("hunter2"), "step {step}: {out}");
            assert_eq!(out, text.replace("hunter2-secret", "***"), "step {step}");
        }
    }
}
