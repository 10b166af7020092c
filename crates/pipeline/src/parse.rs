//! Reading `sagebrush.toml`: a walk over the spanned TOML document, so every error knows its line and column.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use names::Name;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

mod deploy;
mod sagemaker;
mod train;
mod triggers;

use crate::error::{Error, Location, did_you_mean};
use crate::parameters::{Parameter, ParameterType, SecretSource, Value};
use crate::spec::{Algorithm, BuiltinAlgorithm, ChampionMetric, Channel, Pipeline, Stage, StageKind, Threshold};
use crate::triggers::Triggers;

type Item<'i> = Spanned<DeValue<'i>>;

/// SageMaker's default for `MaxRuntimeInSeconds`.
const DEFAULT_MAX_RUNTIME: Duration = Duration::from_secs(24 * 3600);

/// The file being read and the parameter values to substitute for `${name}`.
struct Cx<'a> {
    file: &'a Path,
    text: &'a str,
    values: &'a BTreeMap<String, Value>,
    /// `[pipeline] allow_absolute_paths`: data paths may leave the project.
    paths_anywhere: bool,
}

impl Cx<'_> {
    fn error(&self, span: &Range<usize>, message: impl Into<String>, hint: Option<String>) -> Error {
        Error::Invalid { location: Location::of(self.file, self.text, span.start), message: message.into(), hint }
    }

    /// `text` with every `${name}` replaced; names that are not parameters are errors unless `keep_unknown`.
    fn substitute(&self, text: &str, span: &Range<usize>, keep_unknown: bool) -> Result<String, Error> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let Some(end) = after.find('}') else {
                return Err(self.error(span, format!("`${{` without a closing `}}` in \"{text}\""), None));
            };
            let name = &after[..end];
            match self.values.get(name) {
                Some(Value::Secret(_)) => return Err(self.secret_in_text(name, span)),
                Some(value) => out.push_str(&value.to_string()),
                None if keep_unknown => out.push_str(&rest[start..start + 3 + end]),
                None => return Err(self.unknown_parameter(name, span)),
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }

    fn secret_in_text(&self, name: &str, span: &Range<usize>) -> Error {
        let hint = format!("a shell stage reads it from the environment variable {}", name.to_ascii_uppercase());
        self.error(span, format!("`${{{name}}}` is a secret, which is never written into the pipeline"), Some(hint))
    }

    fn unknown_parameter(&self, name: &str, span: &Range<usize>) -> Error {
        let names = self.values.keys().map(String::as_str);
        let hint = match did_you_mean(name, names) {
            Some(close) => format!("did you mean `${{{close}}}`?"),
            None => format!("declare it under [parameters], e.g. {name} = {{ type = \"string\", default = \"...\" }}"),
        };
        self.error(span, format!("`${{{name}}}` is not a parameter of this pipeline"), Some(hint))
    }

    /// The parameter a string made only of `${name}` refers to.
    fn whole_template(&self, text: &str, span: &Range<usize>) -> Result<Option<&Value>, Error> {
        let trimmed = text.trim();
        let Some(name) = trimmed.strip_prefix("${").and_then(|t| t.strip_suffix('}')) else {
            return Ok(None);
        };
        if name.contains("${") {
            return Ok(None);
        }
        match self.values.get(name) {
            Some(Value::Secret(_)) => Err(self.secret_in_text(name, span)),
            Some(value) => Ok(Some(value)),
            None => Err(self.unknown_parameter(name, span)),
        }
    }

    fn string(&self, key: &str, item: &Item<'_>) -> Result<String, Error> {
        self.string_with(key, item, false)
    }

    fn string_with(&self, key: &str, item: &Item<'_>, keep_unknown: bool) -> Result<String, Error> {
        match item.get_ref() {
            DeValue::String(s) => self.substitute(s, &item.span(), keep_unknown),
            other => Err(self.error(&item.span(), format!("`{key}` must be a string, not {}", type_name(other)), None)),
        }
    }

    /// A name (of the pipeline, a stage, an endpoint, a variant, a model group) by SageMaker's rule.
    fn name(&self, key: &str, item: &Item<'_>) -> Result<Name, Error> {
        let text = self.string(key, item)?;
        Name::parse(&text).map_err(|e| self.error(&item.span(), format!("`{key}`: {e}"), None))
    }

    /// A path to data in the project: relative to it and never climbing out with `..`, unless
    /// `[pipeline] allow_absolute_paths = true`. A run started through the API must not read the
    /// server's files.
    fn path(&self, key: &str, item: &Item<'_>) -> Result<String, Error> {
        let text = self.string(key, item)?;
        self.check_path(key, &text, &item.span())?;
        Ok(text)
    }

    /// A channel's data: a path in the project, or `s3://bucket/key-or-prefix`.
    fn channel(&self, item: &Item<'_>) -> Result<Channel, Error> {
        let text = self.string("channels", item)?;
        match text.strip_prefix("s3://") {
            Some(rest) if rest.split('/').next().is_none_or(str::is_empty) => Err(self.error(
                &item.span(),
                format!("channel \"{}\" names no bucket", names::excerpt(&text, 80)),
                Some("write s3://bucket/key, or s3://bucket/prefix/ for every object under it".to_owned()),
            )),
            Some(_) => Ok(Channel::S3(text)),
            None => {
                self.check_path("channels", &text, &item.span())?;
                Ok(Channel::Path(text))
            }
        }
    }

    fn check_path(&self, key: &str, text: &str, span: &Range<usize>) -> Result<(), Error> {
        if self.paths_anywhere || inside_project(text) {
            return Ok(());
        }
        Err(self.error(
            span,
            format!("`{key}` = \"{}\" is outside the project", names::excerpt(text, 80)),
            Some(
                "paths are relative to the project folder; to read elsewhere set [pipeline] allow_absolute_paths = true"
                    .to_owned(),
            ),
        ))
    }

    fn float(&self, key: &str, item: &Item<'_>) -> Result<f64, Error> {
        let span = item.span();
        let wrong = |shown: &str| self.error(&span, format!("`{key}` must be a number; {shown} is not one"), None);
        match item.get_ref() {
            DeValue::Integer(i) => {
                i64::from_str_radix(i.as_str(), i.radix()).map(|i| i as f64).map_err(|_| wrong(i.as_str()))
            }
            DeValue::Float(f) => f.as_str().replace('_', "").parse().map_err(|_| wrong(f.as_str())),
            DeValue::String(s) => match self.whole_template(s, &span)? {
                Some(Value::Int(i)) => Ok(*i as f64),
                Some(Value::Float(f)) => Ok(*f),
                Some(other) => Err(wrong(&format!("`{s}` (= {other})"))),
                None => self.substitute(s, &span, false)?.trim().parse().map_err(|_| wrong(&format!("\"{s}\""))),
            },
            other => Err(wrong(type_name(other))),
        }
    }

    fn int(&self, key: &str, item: &Item<'_>) -> Result<i64, Error> {
        let span = item.span();
        let wrong = |shown: &str| self.error(&span, format!("`{key}` must be an integer; {shown} is not one"), None);
        match item.get_ref() {
            DeValue::Integer(i) => i64::from_str_radix(i.as_str(), i.radix()).map_err(|_| wrong(i.as_str())),
            DeValue::String(s) => match self.whole_template(s, &span)? {
                Some(Value::Int(i)) => Ok(*i),
                Some(other) => Err(wrong(&format!("`{s}` (= {other})"))),
                None => self.substitute(s, &span, false)?.trim().parse().map_err(|_| wrong(&format!("\"{s}\""))),
            },
            other => Err(wrong(type_name(other))),
        }
    }

    fn duration(&self, key: &str, item: &Item<'_>) -> Result<Duration, Error> {
        let span = item.span();
        let hint = || {
            Some("write a duration like \"500ms\", \"90s\", \"10m\" or \"1h30m\", or a number of seconds".to_owned())
        };
        match item.get_ref() {
            DeValue::Integer(_) => {
                let secs = self.int(key, item)?;
                u64::try_from(secs)
                    .map(Duration::from_secs)
                    .map_err(|_| self.error(&span, format!("`{key}` must not be negative"), None))
            }
            DeValue::String(s) => {
                let text = self.substitute(s, &span, false)?;
                parse_duration(&text)
                    .ok_or_else(|| self.error(&span, format!("`{key}` = \"{text}\" is not a duration"), hint()))
            }
            other => Err(self.error(&span, format!("`{key}` must be a duration, not {}", type_name(other)), hint())),
        }
    }

    fn table<'t, 'i>(&self, key: &str, item: &'t Item<'i>) -> Result<&'t DeTable<'i>, Error> {
        match item.get_ref() {
            DeValue::Table(table) => Ok(table),
            other => Err(self.error(&item.span(), format!("`{key}` must be a table, not {}", type_name(other)), None)),
        }
    }

    fn array<'t, 'i>(&self, key: &str, item: &'t Item<'i>) -> Result<&'t [Item<'i>], Error> {
        match item.get_ref() {
            DeValue::Array(array) => Ok(array),
            other => Err(self.error(&item.span(), format!("`{key}` must be an array, not {}", type_name(other)), None)),
        }
    }

    /// Rejects keys outside `allowed`, suggesting the closest.
    fn allow(&self, table: &DeTable<'_>, what: &str, allowed: &[&str]) -> Result<(), Error> {
        for (key, _) in table.iter() {
            if allowed.contains(&key.get_ref().as_ref()) {
                continue;
            }
            let hint = match did_you_mean(key.get_ref(), allowed.iter().copied()) {
                Some(close) => format!("did you mean `{close}`?"),
                None => format!("{what} takes: {}", allowed.join(", ")),
            };
            return Err(self.error(&key.span(), format!("unknown key `{}` in {what}", key.get_ref()), Some(hint)));
        }
        Ok(())
    }
}

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Item<'i>> {
    table.iter().find(|(k, _)| k.get_ref() == key).map(|(_, v)| v)
}

fn type_name(value: &DeValue<'_>) -> &'static str {
    match value {
        DeValue::String(_) => "a string",
        DeValue::Integer(_) => "an integer",
        DeValue::Float(_) => "a float",
        DeValue::Boolean(_) => "a boolean",
        DeValue::Datetime(_) => "a date",
        DeValue::Array(_) => "an array",
        DeValue::Table(_) => "a table",
    }
}

/// `500ms`, `90s`, `10m`, `1h30m`, `2d`.
pub(crate) fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let number: u64 = rest[..digits].parse().ok()?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let part = match &rest[..unit] {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            "d" => Duration::from_secs(number.checked_mul(86_400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = &rest[unit..];
    }
    Some(total)
}

/// Whether `path` is relative and, read component by component, never climbs above where it starts.
pub(crate) fn inside_project(path: &str) -> bool {
    let mut depth = 0usize;
    for component in Path::new(path).components() {
        match component {
            std::path::Component::Normal(_) => depth += 1,
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return false,
            },
            std::path::Component::RootDir | std::path::Component::Prefix(_) => return false,
        }
    }
    true
}

/// Reads and validates a whole pipeline file.
pub(crate) fn pipeline(file: &Path, text: String) -> Result<Pipeline, Error> {
    let empty = BTreeMap::new();
    let cx = Cx { file, text: &text, values: &empty, paths_anywhere: false };
    let root = parse_toml(&cx)?;
    let root = root.get_ref();
    cx.allow(root, "a pipeline file", &["pipeline", "parameters", "algorithm", "triggers", "notify", "stage"])?;

    let Header { name, description, allow_absolute_paths, keep_runs } = header(&cx, root)?;
    let cx = Cx { paths_anywhere: allow_absolute_paths, ..cx };
    let parameters = match get(root, "parameters") {
        Some(item) => parameters(&cx, cx.table("parameters", item)?)?,
        None => Vec::new(),
    };
    let algorithm = match get(root, "algorithm") {
        Some(item) => Some(algorithm(&cx, item)?),
        None => None,
    };
    let triggers = match get(root, "triggers") {
        Some(item) => triggers::triggers(&cx, cx.table("triggers", item)?)?,
        None => Triggers::default(),
    };
    let notify = match get(root, "notify") {
        Some(item) => triggers::notify(&cx, item)?,
        None => Vec::new(),
    };
    // Validate every stage now, with defaults (or stand-ins) for the values `-p` may change later.
    let values: BTreeMap<String, Value> =
        parameters.iter().map(|p| (p.name.clone(), p.default.clone().unwrap_or_else(|| p.ty.placeholder()))).collect();
    let pipeline = Pipeline {
        path: file.to_path_buf(),
        name,
        description,
        parameters,
        algorithm,
        triggers,
        notify,
        allow_absolute_paths,
        keep_runs,
        source: String::new(),
    };
    stages(&pipeline, &text, &values)?;
    Ok(Pipeline { source: text, ..pipeline })
}

fn parse_toml<'i>(cx: &Cx<'i>) -> Result<Spanned<DeTable<'i>>, Error> {
    DeTable::parse(cx.text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        cx.error(&span, format!("not valid TOML: {}", e.message().trim()), None)
    })
}

struct Header {
    name: Name,
    description: Option<String>,
    allow_absolute_paths: bool,
    keep_runs: usize,
}

fn header(cx: &Cx<'_>, root: &DeTable<'_>) -> Result<Header, Error> {
    let fallback = || {
        let folder = cx
            .file
            .parent()
            .and_then(|d| d.canonicalize().ok())
            .and_then(|d| d.file_name().and_then(|n| Name::parse(&n.to_string_lossy()).ok()));
        folder.ok_or_else(|| {
            cx.error(
                &(0..0),
                "the pipeline has no name",
                Some("add [pipeline] name = \"my-model\" at the top".to_owned()),
            )
        })
    };
    let Some(item) = get(root, "pipeline") else {
        return Ok(Header {
            name: fallback()?,
            description: None,
            allow_absolute_paths: false,
            keep_runs: crate::DEFAULT_KEEP_RUNS,
        });
    };
    let table = cx.table("pipeline", item)?;
    cx.allow(table, "[pipeline]", &["name", "description", "allow_absolute_paths", "keep_runs"])?;
    let name = match get(table, "name") {
        Some(item) => cx.name("name", item)?,
        None => fallback()?,
    };
    let description = get(table, "description").map(|d| cx.string("description", d)).transpose()?;
    let allow_absolute_paths = match get(table, "allow_absolute_paths") {
        None => false,
        Some(item) => match item.get_ref() {
            DeValue::Boolean(b) => *b,
            other => {
                let message = format!("`allow_absolute_paths` must be true or false, not {}", type_name(other));
                return Err(cx.error(&item.span(), message, None));
            }
        },
    };
    let keep_runs = match get(table, "keep_runs") {
        None => crate::DEFAULT_KEEP_RUNS,
        Some(item) => match usize::try_from(cx.int("keep_runs", item)?) {
            Ok(keep) if keep >= 1 => keep,
            _ => {
                let hint = Some(format!(
                    "the newest ended runs kept with their files; {} by default",
                    crate::DEFAULT_KEEP_RUNS
                ));
                return Err(cx.error(&item.span(), "`keep_runs` is at least 1", hint));
            }
        },
    };
    Ok(Header { name, description, allow_absolute_paths, keep_runs })
}

fn parameters(cx: &Cx<'_>, table: &DeTable<'_>) -> Result<Vec<Parameter>, Error> {
    let mut declared = Vec::new();
    for (key, item) in table.iter() {
        let name = key.get_ref().to_string();
        if !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return Err(cx.error(
                &key.span(),
                format!("parameter name `{name}` may use only letters, digits and `_`"),
                None,
            ));
        }
        declared.push(parameter(cx, name, item)?);
    }
    Ok(declared)
}

fn parameter(cx: &Cx<'_>, name: String, item: &Item<'_>) -> Result<Parameter, Error> {
    let span = item.span();
    // `name = 5` is shorthand for a parameter of the literal's type with that default.
    let shorthand = match item.get_ref() {
        DeValue::Integer(_) => Some((ParameterType::Int { min: None, max: None }, Value::Int(cx.int(&name, item)?))),
        DeValue::Float(_) => {
            Some((ParameterType::Float { min: None, max: None }, Value::Float(cx.float(&name, item)?)))
        }
        DeValue::Boolean(b) => Some((ParameterType::Bool, Value::Bool(*b))),
        DeValue::String(s) => Some((ParameterType::String, Value::String(s.to_string()))),
        _ => None,
    };
    if let Some((ty, default)) = shorthand {
        return Ok(Parameter { name, ty, default: Some(default), help: None });
    }
    let table = cx.table(&name, item)?;
    let what = format!("parameter `{name}`");
    cx.allow(table, &what, &["type", "default", "min", "max", "choices", "help"])?;
    let types = ["int", "float", "string", "bool", "path", "choice", "secret"];
    let Some(type_item) = get(table, "type") else {
        return Err(cx.error(
            &span,
            format!("{what} has no type"),
            Some(format!("add type = \"...\", one of {}", types.join(", "))),
        ));
    };
    let declared_type = cx.string("type", type_item)?;
    let bounded = |key: &str| get(table, key);
    let ty = match declared_type.as_str() {
        "int" => ParameterType::Int {
            min: bounded("min").map(|i| cx.int("min", i)).transpose()?,
            max: bounded("max").map(|i| cx.int("max", i)).transpose()?,
        },
        "float" => ParameterType::Float {
            min: bounded("min").map(|i| cx.float("min", i)).transpose()?,
            max: bounded("max").map(|i| cx.float("max", i)).transpose()?,
        },
        "string" => ParameterType::String,
        "bool" => ParameterType::Bool,
        "path" => ParameterType::Path,
        "secret" => ParameterType::Secret,
        "choice" => {
            let Some(choices) = get(table, "choices") else {
                return Err(cx.error(
                    &span,
                    format!("{what} is a choice but lists no choices"),
                    Some("add choices = [\"a\", \"b\"]".to_owned()),
                ));
            };
            let choices: Vec<String> =
                cx.array("choices", choices)?.iter().map(|c| cx.string("choices", c)).collect::<Result<_, _>>()?;
            if choices.is_empty() {
                return Err(cx.error(&span, format!("{what} has an empty list of choices"), None));
            }
            ParameterType::Choice(choices)
        }
        other => {
            let hint = did_you_mean(other, types)
                .map_or_else(|| format!("one of {}", types.join(", ")), |c| format!("did you mean \"{c}\"?"));
            return Err(cx.error(&type_item.span(), format!("unknown parameter type \"{other}\""), Some(hint)));
        }
    };
    for key in ["min", "max"] {
        if let Some(bound) = get(table, key)
            && !matches!(ty, ParameterType::Int { .. } | ParameterType::Float { .. })
        {
            return Err(cx.error(&bound.span(), format!("`{key}` applies only to int and float parameters"), None));
        }
    }
    if let Some(choices) = get(table, "choices")
        && !matches!(ty, ParameterType::Choice(_))
    {
        return Err(cx.error(&choices.span(), "`choices` applies only to choice parameters", None));
    }
    let default = match get(table, "default") {
        None => None,
        Some(item) => {
            let value = match (&ty, item.get_ref()) {
                (ParameterType::Int { .. }, _) => Value::Int(cx.int("default", item)?),
                (ParameterType::Float { .. }, _) => Value::Float(cx.float("default", item)?),
                (ParameterType::Bool, DeValue::Boolean(b)) => Value::Bool(*b),
                (ParameterType::Bool, other) => {
                    return Err(cx.error(
                        &item.span(),
                        format!("the default of a bool must be true or false, not {}", type_name(other)),
                        None,
                    ));
                }
                (ParameterType::Path, _) => Value::Path(cx.string("default", item)?),
                // A default names where the value is read, never the value.
                (ParameterType::Secret, _) => Value::Secret(
                    SecretSource::parse(&cx.string("default", item)?)
                        .map_err(|why| cx.error(&item.span(), format!("default of `{name}`: {why}"), None))?,
                ),
                (ParameterType::String | ParameterType::Choice(_), _) => Value::String(cx.string("default", item)?),
            };
            ty.check(&value).map_err(|why| cx.error(&item.span(), format!("default of `{name}`: {why}"), None))?;
            Some(value)
        }
    };
    let help = get(table, "help").map(|h| cx.string("help", h)).transpose()?;
    Ok(Parameter { name, ty, default, help })
}

fn algorithm(cx: &Cx<'_>, item: &Item<'_>) -> Result<Algorithm, Error> {
    let table = cx.table("algorithm", item)?;
    let keys = ["builtin", "process", "image"];
    cx.allow(table, "[algorithm]", &["builtin", "process", "image", "container", "workdir"])?;
    let container = match get(table, "container") {
        None => false,
        Some(flag) => match flag.get_ref() {
            DeValue::Boolean(b) if get(table, "builtin").is_some() => *b,
            DeValue::Boolean(_) => {
                let hint = "a process or image algorithm says how it runs already; drop `container`".to_owned();
                return Err(cx.error(&flag.span(), "`container` goes with `builtin`", Some(hint)));
            }
            other => {
                let message = format!("`container` must be true or false, not {}", type_name(other));
                return Err(cx.error(&flag.span(), message, None));
            }
        },
    };
    let hint = || {
        Some(
            "write builtin = \"decision-tree\" (or \"random-forest\"), process = \"<folder with train and serve>\", \
             or image = \"<image>\""
                .to_owned(),
        )
    };
    let given: Vec<(&str, &Item<'_>)> = keys.iter().filter_map(|k| get(table, k).map(|item| (*k, item))).collect();
    let (key, value) = match given.as_slice() {
        [] => return Err(cx.error(&item.span(), "[algorithm] names no algorithm", hint())),
        [one] => *one,
        [_, (_, second), ..] => {
            return Err(cx.error(&second.span(), "[algorithm] takes one of `builtin`, `process` or `image`", hint()));
        }
    };
    if key != "process"
        && let Some(workdir) = get(table, "workdir")
    {
        let hint = "a process folder runs at its workdir; an image has its own WORKDIR".to_owned();
        return Err(cx.error(&workdir.span(), "`workdir` goes with `process`", Some(hint)));
    }
    let text = cx.string(key, value)?;
    if text.trim().is_empty() || text.contains(char::is_whitespace) {
        return Err(cx.error(&value.span(), format!("`{key}` = \"{text}\" is empty or has spaces"), hint()));
    }
    match key {
        "process" => {
            // The algorithm is a folder of the project like its data: a run must not run the server's files.
            cx.check_path("process", &text, &value.span())?;
            let workdir = match get(table, "workdir") {
                None => PathBuf::from(names::workdir::DEFAULT_WORKDIR),
                Some(item) => {
                    let workdir = PathBuf::from(cx.string("workdir", item)?);
                    names::workdir::check_workdir(&workdir).map_err(|why| {
                        let hint = "the folder's place in its container: the Dockerfile's WORKDIR, or where it COPYs the folder";
                        cx.error(&item.span(), why, Some(hint.to_owned()))
                    })?;
                    workdir
                }
            };
            Ok(Algorithm::Process { dir: text, workdir })
        }
        "image" => Ok(Algorithm::Image { image: text }),
        _ => {
            let names = BuiltinAlgorithm::ALL.map(BuiltinAlgorithm::as_str);
            match BuiltinAlgorithm::ALL.into_iter().find(|a| a.as_str() == text) {
                Some(found) if container => Ok(Algorithm::BuiltinImage(found)),
                Some(found) => Ok(Algorithm::Builtin(found)),
                None => {
                    let hint = did_you_mean(&text, names).map_or_else(
                        || format!("the built-in algorithms are {}", names.join(", ")),
                        |c| format!("did you mean \"{c}\"?"),
                    );
                    Err(cx.error(&value.span(), format!("no built-in algorithm \"{text}\""), Some(hint)))
                }
            }
        }
    }
}

/// Builds every stage with `values` substituted for `${name}`.
pub(crate) fn stages(pipeline: &Pipeline, text: &str, values: &BTreeMap<String, Value>) -> Result<Vec<Stage>, Error> {
    let cx = Cx { file: &pipeline.path, text, values, paths_anywhere: pipeline.allow_absolute_paths };
    let root = parse_toml(&cx)?;
    let example = "add one, e.g.\n\n  [[stage]]\n  kind = \"train\"\n  channels = { training = \"data/train.csv\" }";
    let Some(item) = get(root.get_ref(), "stage") else {
        return Err(cx.error(&(0..0), "the pipeline has no stages", Some(example.to_owned())));
    };
    let DeValue::Array(items) = item.get_ref() else {
        return Err(cx.error(&item.span(), "stages are written as [[stage]] tables", Some(example.to_owned())));
    };
    let mut built: Vec<Stage> = Vec::new();
    for (index, item) in items.iter().enumerate() {
        let stage = stage(&cx, pipeline, index + 1, item, &built)?;
        built.push(stage);
    }
    Ok(built)
}

/// Every stage kind: its name in files, the keys it takes besides `name`, `kind`, `timeout` and
/// `retries`, and how its settings are read. The one list of kinds; [`StageKind::as_str`] names
/// them back.
const KINDS: &[KindSpec] = &[
    KindSpec { name: "checkout", keys: &["repo", "rev"], read: checkout },
    KindSpec {
        name: "train",
        keys: &[
            "channels",
            "hyperparameters",
            "max_runtime",
            "metrics",
            "instance_type",
            "backend",
            "role",
            "instance_count",
            "volume_size_gb",
            "region",
        ],
        read: train::train_stage,
    },
    KindSpec { name: "build", keys: &["context", "registry"], read: build },
    KindSpec { name: "register", keys: &["model_group"], read: register },
    KindSpec {
        name: "deploy",
        keys: &[
            "endpoint",
            "startup_timeout",
            "instances",
            "instance_type",
            "traffic",
            "traffic_percent",
            "bake",
            "max_error_rate",
            "max_p99_ms",
            "variant",
            "weight",
            "delete_after_run",
            "ttl",
            "multi_model",
            "memory_budget_mb",
            "chain",
            "capture_percent",
            "backend",
            "role",
            "region",
            "alarms",
        ],
        read: deploy::deploy_stage,
    },
    KindSpec { name: "smoke-test", keys: &["endpoint", "data", "min_accuracy"], read: smoke_test },
    KindSpec { name: "gate", keys: &["require", "deny_packages"], read: gate },
    KindSpec {
        name: "ab-test",
        keys: &["endpoint", "control", "challenger", "min_samples", "confidence"],
        read: ab_test,
    },
    KindSpec { name: "champion", keys: &["endpoint", "candidate", "data", "metric", "margin"], read: champion },
    KindSpec { name: "approval", keys: &["reject_after"], read: approval },
    KindSpec { name: "shell", keys: &["command"], read: shell },
];

struct KindSpec {
    name: &'static str,
    keys: &'static [&'static str],
    read: fn(&StageItem<'_, '_>) -> Result<StageKind, Error>,
}

/// A `[[stage]]` table being read, for a kind's reader.
#[derive(Clone, Copy)]
struct StageItem<'s, 'i> {
    cx: &'s Cx<'s>,
    pipeline: &'s Pipeline,
    table: &'s DeTable<'i>,
    item: &'s Item<'i>,
    kind_item: &'s Item<'i>,
    what: &'s str,
}

impl<'s, 'i> StageItem<'s, 'i> {
    fn required(&self, key: &str, example: &str) -> Result<&'s Item<'i>, Error> {
        get(self.table, key).ok_or_else(|| {
            self.cx.error(
                &self.item.span(),
                format!("{} needs `{key}`", self.what),
                Some(format!("add {key} = {example}")),
            )
        })
    }

    fn optional_string(&self, key: &str) -> Result<Option<String>, Error> {
        get(self.table, key).map(|i| self.cx.string(key, i)).transpose()
    }
}

/// The kinds' names, for messages.
fn kind_names() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.name).collect()
}

fn stage(cx: &Cx<'_>, pipeline: &Pipeline, number: usize, item: &Item<'_>, earlier: &[Stage]) -> Result<Stage, Error> {
    let table = cx.table("stage", item)?;
    let kinds = kind_names();
    let Some(kind_item) = get(table, "kind") else {
        return Err(cx.error(
            &item.span(),
            format!("stage {number} has no kind"),
            Some(format!("add kind = \"...\", one of {}", kinds.join(", "))),
        ));
    };
    let kind_name = cx.string("kind", kind_item)?;
    let Some(spec) = KINDS.iter().find(|k| k.name == kind_name) else {
        let hint = did_you_mean(&kind_name, kinds.iter().copied())
            .map_or_else(|| format!("the kinds are {}", kinds.join(", ")), |c| format!("did you mean \"{c}\"?"));
        return Err(cx.error(&kind_item.span(), format!("unknown stage kind \"{kind_name}\""), Some(hint)));
    };
    let what = format!("a {kind_name} stage");
    let common = ["name", "kind", "timeout", "retries"];
    let allowed: Vec<&str> = common.iter().chain(spec.keys).copied().collect();
    cx.allow(table, &what, &allowed)?;
    let kind = (spec.read)(&StageItem { cx, pipeline, table, item, kind_item, what: &what })?;

    let name = match get(table, "name") {
        Some(item) => {
            let name = cx.name("name", item)?;
            if earlier.iter().any(|s| s.name == name) {
                return Err(cx.error(
                    &item.span(),
                    format!("two stages are named \"{name}\""),
                    Some("give each stage its own name".to_owned()),
                ));
            }
            name
        }
        None => {
            let base = kind.as_str();
            (1..)
                .map(|n| if n == 1 { base.to_owned() } else { format!("{base}-{n}") })
                .find(|n| earlier.iter().all(|s| s.name != n.as_str()))
                .and_then(|n| Name::parse(&n).ok())
                .ok_or_else(|| cx.error(&item.span(), "the stage needs a `name`", None))?
        }
    };
    let timeout = get(table, "timeout").map(|t| cx.duration("timeout", t)).transpose()?;
    let retries = match get(table, "retries") {
        None => 0,
        Some(item) => {
            let n = cx.int("retries", item)?;
            u32::try_from(n)
                .ok()
                .filter(|n| *n <= 100)
                .ok_or_else(|| cx.error(&item.span(), format!("retries = {n} must be between 0 and 100"), None))?
        }
    };
    Ok(Stage { name, kind, timeout, retries })
}

fn checkout(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let optional_string = |key: &str| s.optional_string(key);
    Ok(StageKind::Checkout { repo: optional_string("repo")?, rev: optional_string("rev")? })
}

fn build(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, pipeline, table, kind_item, .. } = *s;
    if !matches!(pipeline.algorithm, Some(Algorithm::Image { .. })) {
        return Err(cx.error(
            &kind_item.span(),
            "a build stage builds the algorithm's image, but [algorithm] names no image",
            Some("add [algorithm] image = \"my-algorithm\"; the build stage tags and pushes it".to_owned()),
        ));
    }
    Ok(StageKind::Build {
        context: get(table, "context").map(|c| cx.path("context", c)).transpose()?.unwrap_or_else(|| ".".to_owned()),
        registry: get(table, "registry").map(|r| sagemaker::registry(cx, r)).transpose()?.unwrap_or_default(),
    })
}

fn approval(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, table, .. } = *s;
    Ok(StageKind::Approval {
        reject_after: get(table, "reject_after").map(|t| cx.duration("reject_after", t)).transpose()?,
    })
}

fn register(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, pipeline, table, .. } = *s;
    Ok(StageKind::Register {
        model_group: get(table, "model_group")
            .map(|g| cx.name("model_group", g))
            .transpose()?
            .unwrap_or_else(|| pipeline.name.clone()),
    })
}

fn smoke_test(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, table, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    let min_accuracy = match get(table, "min_accuracy") {
        None => None,
        Some(item) => {
            let min = cx.float("min_accuracy", item)?;
            if !(0.0..=1.0).contains(&min) {
                return Err(cx.error(&item.span(), format!("min_accuracy = {min} must be between 0 and 1"), None));
            }
            Some(min)
        }
    };
    Ok(StageKind::SmokeTest {
        endpoint: cx.name("endpoint", required("endpoint", "\"my-model-test\"")?)?,
        data: cx.path("data", required("data", "\"data/test.csv\"")?)?,
        min_accuracy,
    })
}

fn champion(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, table, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    let metric = match get(table, "metric") {
        None => ChampionMetric::Accuracy,
        Some(item) => match cx.string("metric", item)?.as_str() {
            "accuracy" => ChampionMetric::Accuracy,
            "rmse" => ChampionMetric::Rmse,
            other => {
                let hint = Some("accuracy for a classifier, rmse for a regressor".to_owned());
                return Err(cx.error(&item.span(), format!("no metric \"{other}\""), hint));
            }
        },
    };
    let margin = match get(table, "margin") {
        None => 0.0,
        Some(item) => {
            let margin = cx.float("margin", item)?;
            if !(margin >= 0.0 && margin.is_finite()) {
                return Err(cx.error(&item.span(), format!("margin = {margin} must be 0 or more"), None));
            }
            margin
        }
    };
    Ok(StageKind::Champion {
        endpoint: cx.name("endpoint", required("endpoint", "\"my-model-prod\"")?)?,
        candidate: cx.name("candidate", required("candidate", "\"my-model-test\"")?)?,
        data: cx.path("data", required("data", "\"data/validation.csv\"")?)?,
        metric,
        margin,
    })
}

fn gate(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, table, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    let deny_packages = match get(table, "deny_packages") {
        None => Vec::new(),
        Some(list) => {
            cx.array("deny_packages", list)?.iter().map(|p| cx.string("deny_packages", p)).collect::<Result<_, _>>()?
        }
    };
    let require = match get(table, "require") {
        None if !deny_packages.is_empty() => Vec::new(),
        _ => thresholds(cx, required("require", "[{ metric = \"validation:accuracy\", min = 0.9 }]")?)?,
    };
    Ok(StageKind::Gate { require, deny_packages })
}

fn ab_test(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, table, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    let min_samples = match get(table, "min_samples") {
        None => 100,
        Some(item) => u64::try_from(cx.int("min_samples", item)?)
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| cx.error(&item.span(), "min_samples must be at least 1", None))?,
    };
    let confidence = match get(table, "confidence") {
        None => 0.95,
        Some(item) => {
            let confidence = cx.float("confidence", item)?;
            if !(confidence > 0.0 && confidence < 1.0) {
                let hint =
                    "e.g. 0.95: the test promotes only when a difference is that unlikely to be chance".to_owned();
                return Err(cx.error(
                    &item.span(),
                    format!("confidence = {confidence} must be between 0 and 1"),
                    Some(hint),
                ));
            }
            confidence
        }
    };
    Ok(StageKind::AbTest {
        endpoint: cx.name("endpoint", required("endpoint", "\"my-model-prod\"")?)?,
        control: match get(table, "control") {
            Some(item) => cx.name("control", item)?,
            None => Name::all_traffic(),
        },
        challenger: cx.name("challenger", required("challenger", "\"B\"")?)?,
        min_samples,
        confidence,
    })
}

fn shell(s: &StageItem<'_, '_>) -> Result<StageKind, Error> {
    let StageItem { cx, .. } = *s;
    let required = |key: &str, example: &str| s.required(key, example);
    Ok(StageKind::Shell { command: cx.string_with("command", required("command", "\"make check\"")?, true)? })
}

fn thresholds(cx: &Cx<'_>, item: &Item<'_>) -> Result<Vec<Threshold>, Error> {
    let mut require = Vec::new();
    for entry in cx.array("require", item)? {
        let fields = cx.table("require", entry)?;
        cx.allow(fields, "a gate requirement", &["metric", "min", "max"])?;
        let Some(metric) = get(fields, "metric") else {
            return Err(cx.error(
                &entry.span(),
                "a gate requirement needs `metric`",
                Some("write { metric = \"validation:accuracy\", min = 0.9 }".to_owned()),
            ));
        };
        let min = get(fields, "min").map(|m| cx.float("min", m)).transpose()?;
        let max = get(fields, "max").map(|m| cx.float("max", m)).transpose()?;
        if min.is_none() && max.is_none() {
            return Err(cx.error(&entry.span(), "a gate requirement needs `min`, `max` or both", None));
        }
        require.push(Threshold { metric: cx.string("metric", metric)?, min, max });
    }
    if require.is_empty() {
        return Err(cx.error(
            &item.span(),
            "a gate with no requirements lets everything through",
            Some("add { metric = \"validation:accuracy\", min = 0.9 }".to_owned()),
        ));
    }
    Ok(require)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_duration("10"), None);
        assert_eq!(parse_duration("ten minutes"), None);
        assert_eq!(parse_duration(""), None);
    }
}
