//! Typed parameters: declared in `[parameters]`, overridden with `-p name=value`, checked before a run starts.

use std::collections::BTreeMap;
use std::fmt;

use names::excerpt;

use crate::error::{Error, did_you_mean};

/// A parameter's resolved value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Int(i64),
    Float(f64),
    String(String),
    Bool(bool),
    /// A path relative to the project folder.
    Path(String),
    /// Where a secret's value is read when the run starts; the value itself is never part of a pipeline.
    Secret(SecretSource),
}

/// Where a `secret` parameter's value comes from: `env:NAME` or `file:PATH`, read by the process
/// that runs the run (the server, when one runs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(String),
}

impl SecretSource {
    /// Parses `env:NAME` or `file:PATH`. The message never repeats `text`: someone may have
    /// passed the secret itself.
    pub fn parse(text: &str) -> Result<SecretSource, String> {
        let wrong = || "a secret is given as env:NAME or file:PATH, never as its value".to_owned();
        if let Some(name) = text.strip_prefix("env:") {
            let valid = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            return if valid { Ok(SecretSource::Env(name.to_owned())) } else { Err(wrong()) };
        }
        match text.strip_prefix("file:") {
            Some(path) if !path.is_empty() => Ok(SecretSource::File(path.to_owned())),
            _ => Err(wrong()),
        }
    }

    /// The secret's value: the variable, or the file's contents without its final newline.
    pub fn read(&self) -> Result<String, String> {
        let value = match self {
            SecretSource::Env(name) => {
                std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))?
            }
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| format!("{path}: {e}"))?;
                text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text).to_owned()
            }
        };
        if value.is_empty() {
            return Err(format!("{self} is empty"));
        }
        Ok(value)
    }
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(name) => write!(f, "env:{name}"),
            SecretSource::File(path) => write!(f, "file:{path}"),
        }
    }
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::String(s) | Value::Path(s) => f.write_str(s),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Secret(source) => write!(f, "{source}"),
        }
    }
}

/// What a parameter accepts.
#[derive(Debug, Clone, PartialEq)]
pub enum ParameterType {
    Int {
        min: Option<i64>,
        max: Option<i64>,
    },
    Float {
        min: Option<f64>,
        max: Option<f64>,
    },
    String,
    Bool,
    Path,
    Choice(Vec<String>),
    /// Reaches stages only as an environment variable, masked as `***` wherever sagebrush shows it.
    Secret,
}

impl ParameterType {
    /// The type's name as written in the file.
    pub fn name(&self) -> &'static str {
        match self {
            ParameterType::Int { .. } => "int",
            ParameterType::Float { .. } => "float",
            ParameterType::String => "string",
            ParameterType::Bool => "bool",
            ParameterType::Path => "path",
            ParameterType::Choice(_) => "choice",
            ParameterType::Secret => "secret",
        }
    }

    /// Parses `text` as a value of this type, with a message saying what was expected.
    pub fn parse(&self, text: &str) -> Result<Value, String> {
        // Quoted only in part: a value sent through the API may be megabytes.
        let shown = excerpt(text, 80);
        let value = match self {
            ParameterType::Int { .. } => Value::Int(
                text.trim().parse().map_err(|_| format!("`{shown}` is not an integer (this parameter is an int)"))?,
            ),
            ParameterType::Float { .. } => {
                let x: f64 = text
                    .trim()
                    .parse()
                    .map_err(|_| format!("`{shown}` is not a number (this parameter is a float)"))?;
                if !x.is_finite() {
                    return Err(format!("`{shown}` is not a finite number"));
                }
                Value::Float(x)
            }
            ParameterType::String => Value::String(text.to_owned()),
            ParameterType::Path => Value::Path(text.to_owned()),
            ParameterType::Bool => match text.trim() {
                "true" => Value::Bool(true),
                "false" => Value::Bool(false),
                _ => {
                    return Err(format!("`{shown}` is not true or false (this parameter is a bool)"));
                }
            },
            ParameterType::Secret => Value::Secret(SecretSource::parse(text)?),
            ParameterType::Choice(choices) => {
                if !choices.iter().any(|c| c == text) {
                    return Err(format!("`{shown}` is not one of {}", choices.join(", ")));
                }
                Value::String(text.to_owned())
            }
        };
        self.check(&value)?;
        Ok(value)
    }

    /// Checks the range of a value already of this type.
    pub(crate) fn check(&self, value: &Value) -> Result<(), String> {
        match (self, value) {
            (ParameterType::Int { min, max }, Value::Int(i)) => range(*i, *min, *max),
            (ParameterType::Float { min, max }, Value::Float(x)) => range(*x, *min, *max),
            (ParameterType::Choice(choices), Value::String(s)) if !choices.contains(s) => {
                Err(format!("`{s}` is not one of {}", choices.join(", ")))
            }
            _ => Ok(()),
        }
    }

    /// A value that passes `check`, standing in for a parameter with no default while the file is validated.
    pub(crate) fn placeholder(&self) -> Value {
        match self {
            ParameterType::Int { min, max } => Value::Int(min.or(*max).unwrap_or(1)),
            ParameterType::Float { min, max } => Value::Float(min.or(*max).unwrap_or(1.0)),
            ParameterType::String => Value::String("placeholder".to_owned()),
            ParameterType::Bool => Value::Bool(false),
            ParameterType::Path => Value::Path("placeholder".to_owned()),
            ParameterType::Choice(choices) => Value::String(choices.first().cloned().unwrap_or_default()),
            ParameterType::Secret => Value::Secret(SecretSource::Env("placeholder".to_owned())),
        }
    }
}

fn range<T: PartialOrd + fmt::Display + Copy>(value: T, min: Option<T>, max: Option<T>) -> Result<(), String> {
    if let Some(min) = min
        && value < min
    {
        return Err(format!("{value} is below the minimum {min}"));
    }
    if let Some(max) = max
        && value > max
    {
        return Err(format!("{value} is above the maximum {max}"));
    }
    Ok(())
}

/// One declared parameter.
#[derive(Debug, Clone, PartialEq)]
pub struct Parameter {
    pub name: String,
    pub ty: ParameterType,
    pub default: Option<Value>,
    pub help: Option<String>,
}

/// Splits `name=value` from the command line.
pub fn parse_override(text: &str) -> Result<(String, String), Error> {
    match text.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => Ok((name.trim().to_owned(), value.to_owned())),
        _ => Err(Error::Parameter {
            parameter: None,
            message: format!("`-p {}` is not name=value", excerpt(text, 80)),
            hint: Some("write it as -p name=value, for example -p max_leaf_nodes=3".to_owned()),
        }),
    }
}

/// Every parameter's value: overrides first, then defaults; unknown names and missing values are errors.
pub(crate) fn resolve(
    declared: &[Parameter],
    overrides: &[(String, String)],
) -> Result<BTreeMap<String, Value>, Error> {
    let mut values = BTreeMap::new();
    for (name, text) in overrides {
        let Some(parameter) = declared.iter().find(|p| &p.name == name) else {
            let names: Vec<&str> = declared.iter().map(|p| p.name.as_str()).collect();
            let hint = match did_you_mean(name, names.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None if names.is_empty() => "this pipeline declares no parameters".to_owned(),
                None => format!("this pipeline's parameters are: {}", names.join(", ")),
            };
            return Err(Error::Parameter {
                parameter: None,
                // The value is not repeated: it may be a secret given to the wrong name.
                message: format!("unknown parameter `{}` in -p {}=...", excerpt(name, 40), excerpt(name, 40)),
                hint: Some(hint),
            });
        };
        let shown = if parameter.ty == ParameterType::Secret { "***".to_owned() } else { excerpt(text, 80) };
        let value = parameter.ty.parse(text).map_err(|why| Error::Parameter {
            parameter: Some(name.clone()),
            message: format!("-p {name}={shown}: {why}"),
            hint: parameter.help.as_ref().map(|h| format!("{name} ({}): {h}", parameter.ty.name())),
        })?;
        values.insert(name.clone(), value);
    }
    for parameter in declared {
        if values.contains_key(&parameter.name) {
            continue;
        }
        let Some(default) = &parameter.default else {
            return Err(Error::Parameter {
                parameter: Some(parameter.name.clone()),
                message: format!("parameter `{}` has no default and was not given", parameter.name),
                hint: Some(format!("pass -p {}=<{}>", parameter.name, parameter.ty.name())),
            });
        };
        values.insert(parameter.name.clone(), default.clone());
    }
    Ok(values)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves() -> Parameter {
        Parameter {
            name: "max_leaf_nodes".into(),
            ty: ParameterType::Int { min: Some(2), max: None },
            default: Some(Value::Int(5)),
            help: None,
        }
    }

    #[test]
    fn overrides_are_typed_and_ranged() {
        let declared = [leaves()];
        let values = resolve(&declared, &[("max_leaf_nodes".into(), "3".into())]).unwrap();
        assert_eq!(values["max_leaf_nodes"], Value::Int(3));
        let wrong = resolve(&declared, &[("max_leaf_nodes".into(), "abc".into())]).unwrap_err().to_string();
        assert!(wrong.contains("max_leaf_nodes") && wrong.contains("int"), "{wrong}");
        assert!(resolve(&declared, &[("max_leaf_nodes".into(), "1".into())]).is_err());
        let unknown = resolve(&declared, &[("max_leaf_node".into(), "3".into())]).unwrap_err().to_string();
        assert!(unknown.contains("did you mean `max_leaf_nodes`"), "{unknown}");
    }

    #[test]
    fn missing_values_say_how_to_pass_them() {
        let note = Parameter { name: "note".into(), ty: ParameterType::String, default: None, help: None };
        let error = resolve(&[note], &[]).unwrap_err().to_string();
        assert!(error.contains("-p note=<string>"), "{error}");
    }

    #[test]
    fn a_secret_is_a_reference_and_never_echoed() {
        let token = Parameter { name: "token".into(), ty: ParameterType::Secret, default: None, help: None };
        let values = resolve(std::slice::from_ref(&token), &[("token".into(), "env:HF_TOKEN".into())]).unwrap();
        assert_eq!(values["token"], Value::Secret(SecretSource::Env("HF_TOKEN".into())));
        let given = resolve(&[token], &[("token".into(), "hunter2-value".into())]).unwrap_err().to_string();
        assert!(!given.contains("hunter2"), "{given}");
        assert!(given.contains("env:NAME or file:PATH"), "{given}");
    }

    #[test]
    fn override_syntax() {
        assert_eq!(parse_override("a=b=c").unwrap(), ("a".to_owned(), "b=c".to_owned()));
        assert!(parse_override("abc").is_err());
    }
}
