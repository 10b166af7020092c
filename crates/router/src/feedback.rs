//! Ground truth for A/B tests: what each variant answered, by inference id, so a label sent back
//! later counts for or against the variant that answered.
//!
//! Answers are remembered only on endpoints with more than one variant, so a single-variant
//! endpoint's request path does no extra work. What is kept of an answer is what a label is
//! checked against: the endpoint and variant, a 64-bit fingerprint of the answer's text (never
//! the text), and when; at most [`REMEMBERED_BYTES`] of them, none older than [`REMEMBERED_FOR`].

use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde::Serialize;

/// The most memory remembered answers take, per router: about 200,000 of them.
pub const REMEMBERED_BYTES: usize = 32 * 1024 * 1024;
/// How long an answer can be labelled after it was given.
pub const REMEMBERED_FOR: Duration = Duration::from_secs(3600);
/// An inference id longer than this is not remembered (SageMaker allows 64 characters).
const MAX_ID_BYTES: usize = 256;
/// What an entry costs beyond its text: the map's and the queue's slots, the fingerprint, the time.
const ENTRY_OVERHEAD: usize = 128;

/// Labels sent back for one variant's answers.
#[derive(Debug, Default)]
pub struct Accuracy {
    labelled: AtomicU64,
    correct: AtomicU64,
}

/// A copy of [`Accuracy`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct AccuracyView {
    pub labelled: u64,
    pub correct: u64,
}

impl Accuracy {
    pub(crate) fn count(&self, correct: bool) {
        self.labelled.fetch_add(1, Ordering::Relaxed);
        if correct {
            self.correct.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn view(&self) -> AccuracyView {
        AccuracyView { labelled: self.labelled.load(Ordering::Relaxed), correct: self.correct.load(Ordering::Relaxed) }
    }
}

impl AccuracyView {
    /// The share of labelled answers that were right, if any were labelled.
    pub fn rate(&self) -> Option<f64> {
        (self.labelled > 0).then(|| self.correct as f64 / self.labelled as f64)
    }
}

/// Who answered an inference, what (as a fingerprint), and when.
#[derive(Clone, Debug)]
pub(crate) struct Answered {
    pub endpoint: String,
    pub variant: String,
    fingerprint: u64,
    at: Instant,
}

impl Answered {
    pub fn new(endpoint: String, variant: String, answer: &[u8]) -> Answered {
        Answered { endpoint, variant, fingerprint: fingerprint(answer), at: Instant::now() }
    }

    /// Whether `label` is what was answered (both trimmed, as the answer of one row is `label\n`).
    pub fn is(&self, label: &str) -> bool {
        fingerprint(label.as_bytes()) == self.fingerprint
    }
}

fn fingerprint(text: &[u8]) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    text.trim_ascii().hash(&mut hasher);
    hasher.finish()
}

/// Recent answers by inference id.
#[derive(Default)]
pub(crate) struct Answers {
    inner: Mutex<Remembered>,
}

#[derive(Default)]
struct Remembered {
    by_id: HashMap<String, Answered>,
    /// Oldest first: the id, when it was remembered and what it costs.
    order: VecDeque<(String, Instant, usize)>,
    bytes: usize,
}

impl Answers {
    pub fn remember(&self, inference_id: String, answered: Answered) {
        if inference_id.len() > MAX_ID_BYTES {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let cost = 2 * inference_id.len() + answered.endpoint.len() + answered.variant.len() + ENTRY_OVERHEAD;
        let at = answered.at;
        inner.by_id.insert(inference_id.clone(), answered);
        inner.order.push_back((inference_id, at, cost));
        inner.bytes += cost;
        while let Some((_, oldest, _)) = inner.order.front()
            && (inner.bytes > REMEMBERED_BYTES || at.duration_since(*oldest) > REMEMBERED_FOR)
        {
            let Some((id, when, cost)) = inner.order.pop_front() else { break };
            inner.bytes -= cost;
            // The id may have been given again since; only its own entry goes.
            if inner.by_id.get(&id).is_some_and(|a| a.at == when) {
                inner.by_id.remove(&id);
            }
        }
    }

    /// Takes the answer for an id: each answer is labelled once, within [`REMEMBERED_FOR`].
    pub fn take(&self, inference_id: &str) -> Option<Answered> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.by_id.remove(inference_id).filter(|a| a.at.elapsed() <= REMEMBERED_FOR)
    }

    /// How many answers are remembered, and what they cost.
    #[cfg(test)]
    fn size(&self) -> (usize, usize) {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        (inner.by_id.len(), inner.bytes)
    }
}

/// Whether two success rates differ more than chance explains: the two-sided p-value of a two-proportion z-test.
pub fn two_proportion_p_value(a: AccuracyView, b: AccuracyView) -> Option<f64> {
    let (na, nb) = (a.labelled as f64, b.labelled as f64);
    if na == 0.0 || nb == 0.0 {
        return None;
    }
    let pooled = (a.correct + b.correct) as f64 / (na + nb);
    let se = (pooled * (1.0 - pooled) * (1.0 / na + 1.0 / nb)).sqrt();
    let diff = a.correct as f64 / na - b.correct as f64 / nb;
    if se == 0.0 {
        // Both all right or all wrong: a difference is certain, none is none.
        return Some(if diff == 0.0 { 1.0 } else { 0.0 });
    }
    Some(erfc((diff / se).abs() / std::f64::consts::SQRT_2).min(1.0))
}

/// The complementary error function (W. J. Cody's rational Chebyshev fit as given in Numerical Recipes' `erfcc`; relative error < 1.2e-7).
fn erfc(x: f64) -> f64 {
    let t = 1.0 / (1.0 + 0.5 * x.abs());
    let poly = -x * x - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let value = t * poly.exp();
    if x >= 0.0 { value } else { 2.0 - value }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view(correct: u64, labelled: u64) -> AccuracyView {
        AccuracyView { labelled, correct }
    }

    #[test]
    fn p_values_match_the_normal_distribution() {
        assert!((erfc(0.0) - 1.0).abs() < 1e-7);
        // z = 1.96 is the two-sided 5% point.
        assert!((erfc(1.96 / std::f64::consts::SQRT_2) - 0.05).abs() < 1e-3);
        assert_eq!(two_proportion_p_value(view(50, 100), view(50, 100)), Some(1.0), "a p-value is at most 1");
        let clear = two_proportion_p_value(view(90, 100), view(60, 100)).unwrap();
        assert!(clear < 1e-5, "{clear}");
        let noise = two_proportion_p_value(view(52, 100), view(48, 100)).unwrap();
        assert!(noise > 0.5, "{noise}");
        assert_eq!(two_proportion_p_value(view(0, 0), view(1, 1)), None);
    }

    #[test]
    fn answers_are_labelled_once() {
        let answers = Answers::default();
        answers.remember("id".into(), Answered::new("e".into(), "B".into(), b"setosa\n"));
        let answered = answers.take("id").unwrap();
        assert_eq!(answered.variant, "B");
        assert!(answered.is(" setosa ") && !answered.is("virginica"));
        assert!(answers.take("id").is_none());
    }

    #[test]
    fn remembered_answers_are_bounded_by_bytes_whatever_the_answers_size() {
        let answers = Answers::default();
        let huge = vec![b'x'; 1 << 20];
        for n in 0..400_000 {
            answers.remember(format!("id-{n}"), Answered::new("endpoint".into(), "B".into(), &huge[..(n % 64) + 1]));
        }
        let (count, bytes) = answers.size();
        assert!(bytes <= REMEMBERED_BYTES, "{bytes}");
        assert!(count > 100_000 && count < 400_000, "{count}");
        assert!(answers.take("id-0").is_none(), "the oldest went first");
        assert!(answers.take("id-399999").is_some());
        // An id longer than any client sends is not kept.
        answers.remember("x".repeat(10_000), Answered::new("endpoint".into(), "B".into(), b"1"));
        assert!(answers.take(&"x".repeat(10_000)).is_none());
    }
}
