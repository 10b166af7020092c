//! Ground truth for A/B tests: what each variant answered, by inference id, so a label sent back
//! later counts for or against the variant that answered.
//!
//! Answers are remembered only on endpoints with more than one variant, so a single-variant
//! endpoint's request path does no extra work; the most recent [`REMEMBERED`] are kept.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

/// Answers remembered per router for labelling; older ones are forgotten.
const REMEMBERED: usize = 200_000;

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

/// Who answered an inference, and with what.
#[derive(Clone, Debug)]
pub(crate) struct Answered {
    pub endpoint: String,
    pub variant: String,
    pub answer: String,
}

/// Recent answers by inference id.
#[derive(Default)]
pub(crate) struct Answers {
    inner: Mutex<(HashMap<String, Answered>, VecDeque<String>)>,
}

impl Answers {
    pub fn remember(&self, inference_id: String, answered: Answered) {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let (map, order) = &mut *inner;
        if map.insert(inference_id.clone(), answered).is_none() {
            order.push_back(inference_id);
        }
        while order.len() > REMEMBERED {
            if let Some(old) = order.pop_front() {
                map.remove(&old);
            }
        }
    }

    /// Takes the answer for an id: each answer is labelled once.
    pub fn take(&self, inference_id: &str) -> Option<Answered> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.0.remove(inference_id)
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
        let answered = Answered { endpoint: "e".into(), variant: "B".into(), answer: "x".into() };
        answers.remember("id".into(), answered);
        assert_eq!(answers.take("id").map(|a| a.variant), Some("B".to_owned()));
        assert!(answers.take("id").is_none());
    }
}
