//! Names of projects, endpoints, model groups, variants and stages: validated once, and the only
//! way a path under the home is built; and ([`workdir`]) the paths a program may be given in its sandbox.
//!
//! A [`Name`] follows SageMaker's rule for endpoint, variant and model package group names,
//! `^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}`: 1 to 63 ASCII letters, digits and `-`, starting and
//! ending with a letter or digit. So a name can never hold a path separator, `..`, a control
//! character or anything a shell or URL would read specially, and a `Name` can only be made by
//! [`Name::parse`].

use std::fmt;

pub mod workdir;

/// The longest name SageMaker accepts.
pub const MAX_LEN: usize = 63;

/// A validated name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

/// Why a text is not a [`Name`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "\"{shown}\" is not a valid name: {why}; a name is 1 to 63 letters, digits and `-`, starting and ending with a letter or digit"
)]
pub struct InvalidName {
    /// The text, with control characters escaped and cut to a short prefix, safe to print.
    pub shown: String,
    /// What is wrong with it.
    pub why: &'static str,
}

impl Name {
    /// Checks `text` against the rule.
    pub fn parse(text: &str) -> Result<Name, InvalidName> {
        let invalid = |why| Err(InvalidName { shown: excerpt(text, 40), why });
        let bytes = text.as_bytes();
        match (bytes.first(), bytes.last()) {
            (None, _) | (_, None) => return invalid("it is empty"),
            (Some(first), Some(last)) if !first.is_ascii_alphanumeric() || !last.is_ascii_alphanumeric() => {
                return invalid("it must start and end with a letter or digit");
            }
            _ => {}
        }
        if bytes.len() > MAX_LEN {
            return invalid("it is longer than 63 characters");
        }
        if !bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-') {
            return invalid("it may hold only letters, digits and `-`");
        }
        Ok(Name(text.to_owned()))
    }

    /// `AllTraffic`: the variant a model goes into when none is named, as SageMaker calls it.
    pub fn all_traffic() -> Name {
        Name("AllTraffic".to_owned())
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Name {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl AsRef<str> for Name {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl AsRef<std::path::Path> for Name {
    fn as_ref(&self) -> &std::path::Path {
        std::path::Path::new(&self.0)
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for Name {
    type Err = InvalidName;
    fn from_str(text: &str) -> Result<Name, InvalidName> {
        Name::parse(text)
    }
}

impl TryFrom<String> for Name {
    type Error = InvalidName;
    fn try_from(text: String) -> Result<Name, InvalidName> {
        Name::parse(&text)
    }
}

impl From<Name> for String {
    fn from(name: Name) -> String {
        name.0
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Name {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

impl PartialEq<String> for Name {
    fn eq(&self, other: &String) -> bool {
        self.0 == *other
    }
}

impl PartialEq<Name> for String {
    fn eq(&self, other: &Name) -> bool {
        *self == other.0
    }
}

impl PartialEq<Name> for str {
    fn eq(&self, other: &Name) -> bool {
        self == other.0
    }
}

/// At most `max` characters of `text`, control characters escaped, with `…` when cut: for quoting
/// what a user sent in a message without echoing megabytes or terminal escapes back.
pub fn excerpt(text: &str, max: usize) -> String {
    let mut shown = String::new();
    for (count, c) in text.chars().enumerate() {
        if count == max {
            shown.push('…');
            break;
        }
        if c.is_control() {
            shown.extend(c.escape_default());
        } else {
            shown.push(c);
        }
    }
    shown
}

/// `text` with control characters escaped, for printing stored text on a terminal.
pub fn printable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().any(char::is_control) {
        text.chars()
            .flat_map(|c| if c.is_control() { c.escape_default().collect() } else { vec![c] })
            .collect::<String>()
            .into()
    } else {
        text.into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn follows_sagemakers_rule() {
        for good in ["iris", "iris-prod", "a", "A1", "x--y", "AllTraffic", &"a".repeat(63)] {
            assert!(Name::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "-a",
            "a-",
            "a_b",
            "a.b",
            "..",
            "../../etc",
            "a/b",
            "a\\b",
            "a b",
            "a\nb",
            "a\u{1b}[31m",
            "ä",
            &"a".repeat(64),
        ] {
            assert!(Name::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn errors_quote_a_short_printable_prefix() {
        let error = Name::parse(&format!("\u{1b}[2J{}", "x".repeat(5_000_000))).unwrap_err();
        let message = error.to_string();
        assert!(message.len() < 300, "{}", message.len());
        assert!(!message.chars().any(char::is_control), "{message:?}");
        assert!(message.contains("\\u{1b}[2J"), "{message}");
    }

    #[test]
    fn serde_validates() {
        assert_eq!(serde_json::from_str::<Name>("\"iris\"").unwrap(), "iris");
        assert!(serde_json::from_str::<Name>("\"../x\"").is_err());
        assert_eq!(serde_json::to_string(&Name::parse("iris").unwrap()).unwrap(), "\"iris\"");
    }

    #[test]
    fn printable_escapes_control_characters() {
        assert_eq!(printable("plain"), "plain");
        assert_eq!(printable("a\u{1b}[31mb\n"), "a\\u{1b}[31mb\\n");
    }
}
