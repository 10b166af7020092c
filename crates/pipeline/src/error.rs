//! The one error type of this crate: every message says where and what to do next.

use std::fmt;
use std::path::PathBuf;

/// A pipeline file or a parameter override that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The pipeline file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Something in the file is wrong at a known place.
    #[error("{location}: {message}{}", hint_suffix(hint))]
    Invalid { location: Location, message: String, hint: Option<String> },
    /// A `-p name=value` override, or a parameter with no value.
    #[error("{message}{}", hint_suffix(hint))]
    Parameter {
        /// The declared parameter it is about (none for an unknown name), so a form can show the
        /// message next to its field.
        parameter: Option<String>,
        message: String,
        hint: Option<String>,
    },
}

fn hint_suffix(hint: &Option<String>) -> String {
    hint.as_ref().map(|h| format!("\n  hint: {h}")).unwrap_or_default()
}

/// A place in a pipeline file, 1-based, as editors count it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: PathBuf,
    pub line: usize,
    pub column: usize,
}

impl Location {
    /// The line and column of byte `offset` in `text`.
    pub(crate) fn of(file: &std::path::Path, text: &str, offset: usize) -> Location {
        let offset = offset.min(text.len());
        let before = text.get(..offset).unwrap_or(text);
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        Location { file: file.to_path_buf(), line, column }
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file.display(), self.line, self.column)
    }
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub(crate) fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= c.len().max(word.len()).div_ceil(3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitution = previous[j] + usize::from(ca != *cb);
            current.push(substitution.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_are_one_based() {
        let text = "a = 1\nbé = \"x\"\n";
        let at = text.find('"').unwrap();
        let location = Location::of(std::path::Path::new("f.toml"), text, at);
        assert_eq!((location.line, location.column), (2, 6));
    }

    #[test]
    fn typos_find_their_word() {
        assert_eq!(did_you_mean("regster", ["train", "register", "deploy"]), Some("register"));
        assert_eq!(did_you_mean("zzzzzz", ["train", "register"]), None);
    }
}
