//! Loading: defaults → TOML file → `WAYMARK_*` environment → flags.
//!
//! Each layer writes raw TOML values into one map keyed by dotted path,
//! remembering which layer set each key ([`Origin`]). Then every key is
//! checked against the schema, problems are collected (never just the first),
//! and only a clean map is deserialized into [`NodeConfig`].

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Value;

use super::NodeConfig;
use super::schema::{self, Kind, Need};

/// Prefix of the environment variables the loader reads.
const ENV_PREFIX: &str = "WAYMARK_";

/// Command-line flags every agency service accepts. Flatten it into the
/// service's own `clap::Parser` with `#[command(flatten)]`.
///
/// The override flags take raw strings on purpose: a bad value is reported by
/// [`load`] with the flag named, alongside every other problem.
#[derive(Debug, Clone, Default, PartialEq, Eq, clap::Args)]
pub struct NodeArgs {
    /// TOML configuration file (keys as in `[section] key = value`).
    #[arg(long = "config", value_name = "FILE", env = "WAYMARK_CONFIG")]
    pub config: Option<PathBuf>,
    /// Override any key, e.g. `--set journal.checkpoint_every_entries=500`.
    /// Repeatable; lists are comma-separated.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Shorthand for `--set grpc.listen=ADDR`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
    /// Shorthand for `--set agency.id=ID`.
    #[arg(long, value_name = "ID")]
    pub agency_id: Option<String>,
    /// Shorthand for `--set journal.data_dir=DIR`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<String>,
    /// Shorthand for `--set telemetry.log_filter=FILTER`.
    #[arg(long, value_name = "FILTER")]
    pub log_filter: Option<String>,
    /// Load and check the configuration, print it as TOML and exit (0 when
    /// valid, 64 when not) without binding anything.
    #[arg(long)]
    pub check_config: bool,
}

/// The layer a configuration value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// No layer set the key.
    Unset,
    /// The built-in default.
    Default,
    /// The TOML file at this path.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// This command-line flag (`--listen`, or `--set grpc.listen`).
    Flag(String),
}

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Where the offending value came from.
    pub origin: Origin,
    /// The dotted key (`grpc.listen`), or what was being read.
    pub key: String,
    /// What is wrong, phrased for the operator.
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (key, msg) = (&self.key, &self.message);
        match &self.origin {
            Origin::Unset => write!(f, "{key}: {msg}"),
            Origin::Default => write!(f, "{key} (default): {msg}"),
            Origin::File(p) => write!(f, "{}: {key}: {msg}", p.display()),
            Origin::Env(var) => write!(f, "{var}: {msg}"),
            Origin::Flag(flag) => write!(f, "{flag}: {msg}"),
        }
    }
}

/// Loading the configuration failed; lists every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration ({} problem{}):{}", .problems.len(),
    if .problems.len() == 1 { "" } else { "s" }, ProblemList(.problems))]
pub struct ConfigError {
    /// The problems, in the order found (layer by layer, then schema order).
    pub problems: Vec<ConfigProblem>,
}

struct ProblemList<'a>(&'a [ConfigProblem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.iter().try_for_each(|p| write!(f, "\n  {p}"))
    }
}

/// Loads the configuration from `args` and the process environment.
///
/// # Errors
/// [`ConfigError`] listing every problem, each with its layer and key.
pub fn load(args: &NodeArgs) -> Result<NodeConfig, ConfigError> {
    load_from(args, std::env::vars_os())
}

/// [`load`] with an explicit environment (for tests and embedding). Only
/// variables of the form `WAYMARK_<SECTION>__<KEY>` are read; other
/// `WAYMARK_*` variables (like `WAYMARK_CONFIG`) are left to their owners.
///
/// # Errors
/// As [`load`].
pub fn load_from(
    args: &NodeArgs,
    env: impl IntoIterator<Item = (OsString, OsString)>,
) -> Result<NodeConfig, ConfigError> {
    let mut l = Layers::default();
    l.defaults();
    if let Some(path) = &args.config {
        l.file(path);
    }
    l.env(env);
    l.flags(args);
    l.finish()
}

#[derive(Default)]
struct Layers {
    values: BTreeMap<&'static str, (Value, Origin)>,
    problems: Vec<ConfigProblem>,
}

impl Layers {
    fn problem(&mut self, origin: Origin, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem {
            origin,
            key: key.into(),
            message: message.into(),
        });
    }

    fn defaults(&mut self) {
        let table = Value::try_from(schema::defaults_only()).expect("defaults serialize to TOML");
        for key in schema::KEYS.iter().filter(|k| k.need == Need::Defaulted) {
            if let Some(v) = lookup(&table, key.path) {
                self.values.insert(key.path, (v.clone(), Origin::Default));
            }
        }
    }

    fn file(&mut self, path: &Path) {
        let origin = Origin::File(path.to_owned());
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => return self.problem(origin, "--config", format!("cannot read file: {e}")),
        };
        let table: toml::Table = match toml::from_str(&text) {
            Ok(t) => t,
            Err(e) => {
                let msg = format!("not valid TOML: {}", e.message());
                return self.problem(origin, "(file)", msg);
            }
        };
        for (section, body) in table {
            let Some(body) = body.as_table() else {
                let msg = if schema::sections().any(|s| s == section) {
                    "expected a [section] table"
                } else {
                    "unknown key"
                };
                self.problem(origin.clone(), section, msg);
                continue;
            };
            for (name, value) in body {
                let dotted = format!("{section}.{name}");
                match schema::find(&dotted) {
                    Some(key) => {
                        self.values
                            .insert(key.path, (value.clone(), origin.clone()));
                    }
                    None => self.problem(origin.clone(), dotted, "unknown key"),
                }
            }
        }
    }

    fn env(&mut self, env: impl IntoIterator<Item = (OsString, OsString)>) {
        let mut vars: Vec<(String, OsString)> = env
            .into_iter()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v)))
            .filter(|(k, _)| k.starts_with(ENV_PREFIX) && k.contains("__"))
            .collect();
        vars.sort();
        for (var, value) in vars {
            let origin = Origin::Env(var.clone());
            let dotted = var[ENV_PREFIX.len()..]
                .replacen("__", ".", 1)
                .to_ascii_lowercase();
            let Some(key) = schema::find(&dotted) else {
                self.problem(origin, dotted, "unknown key");
                continue;
            };
            match value.into_string() {
                Ok(s) => self.set_str(key.path, key.kind, &s, origin),
                Err(_) => self.problem(origin, key.path, "not valid UTF-8"),
            }
        }
    }

    fn flags(&mut self, args: &NodeArgs) {
        for pair in &args.set {
            let Some((name, value)) = pair.split_once('=') else {
                let msg = format!("expected KEY=VALUE, got {pair:?}");
                self.problem(Origin::Flag("--set".to_owned()), pair.clone(), msg);
                continue;
            };
            let origin = Origin::Flag(format!("--set {name}"));
            match schema::find(name.trim()) {
                Some(key) => self.set_str(key.path, key.kind, value, origin),
                None => self.problem(origin, name, "unknown key"),
            }
        }
        let shorthands = [
            ("--listen", "grpc.listen", &args.listen),
            ("--agency-id", "agency.id", &args.agency_id),
            ("--data-dir", "journal.data_dir", &args.data_dir),
            ("--log-filter", "telemetry.log_filter", &args.log_filter),
        ];
        for (flag, path, value) in shorthands {
            if let (Some(v), Some(key)) = (value, schema::find(path)) {
                self.set_str(key.path, key.kind, v, Origin::Flag(flag.to_owned()));
            }
        }
    }

    /// Stores a string from the environment or a flag as the key's TOML type.
    fn set_str(&mut self, path: &'static str, kind: Kind, s: &str, origin: Origin) {
        let value = match kind {
            Kind::Str => Value::String(s.to_owned()),
            Kind::List => Value::Array(
                s.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(|p| Value::String(p.to_owned()))
                    .collect(),
            ),
            Kind::Int => match s.trim().replace('_', "").parse::<i64>() {
                Ok(n) => Value::Integer(n),
                Err(_) => {
                    let shown: String = s.chars().take(80).collect();
                    return self.problem(
                        origin,
                        path,
                        format!("expected an integer, got {shown:?}"),
                    );
                }
            },
        };
        self.values.insert(path, (value, origin));
    }

    fn finish(mut self) -> Result<NodeConfig, ConfigError> {
        let mut root = toml::Table::new();
        for key in schema::KEYS {
            let Some((value, origin)) = self.values.get(key.path).cloned() else {
                if key.need == Need::Required {
                    let env = format!("{ENV_PREFIX}{}", key.path.replacen('.', "__", 1))
                        .to_ascii_uppercase();
                    let msg = format!(
                        "required but not set (set it in the config file, {env} or --set {}=...)",
                        key.path
                    );
                    self.problem(Origin::Unset, key.path, msg);
                }
                continue;
            };
            if let Err(msg) = (key.check)(&value) {
                self.problem(origin, key.path, msg);
                continue;
            }
            let (section, name) = key.path.split_once('.').expect("dotted schema key");
            let table = root
                .entry(section)
                .or_insert_with(|| Value::Table(toml::Table::new()));
            if let Value::Table(t) = table {
                t.insert(name.to_owned(), value);
            }
        }
        if !self.problems.is_empty() {
            return Err(ConfigError {
                problems: self.problems,
            });
        }
        let config = NodeConfig::deserialize(Value::Table(root)).map_err(|e| ConfigError {
            problems: vec![ConfigProblem {
                origin: Origin::Unset,
                key: "(config)".to_owned(),
                message: e.to_string(),
            }],
        })?;
        let problems: Vec<ConfigProblem> = schema::cross_checks(&config)
            .into_iter()
            .map(|(path, message)| ConfigProblem {
                origin: self
                    .values
                    .get(path)
                    .map_or(Origin::Unset, |(_, o)| o.clone()),
                key: path.to_owned(),
                message,
            })
            .collect();
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }
}

fn lookup<'a>(table: &'a Value, dotted: &str) -> Option<&'a Value> {
    dotted.split('.').try_fold(table, |t, part| t.get(part))
}
