//! Finding the `nats-server` binary.
//!
//! Order: `$WAYMARK_NATS_SERVER` (an explicit choice: if set, it is the only
//! candidate, so a typo fails loudly instead of silently testing another
//! server), then every `nats-server` on `PATH` whose `--version` is at least
//! [`MIN_VERSION`] (distribution packages are often older and are skipped with
//! a note), then the pinned copy in `<workspace>/.tools/bin` that
//! `.ci/install-nats` installs. Nothing found is an error naming that script.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use crate::{Error, Result};

/// Environment variable naming the `nats-server` binary to use.
pub const ENV_NATS_SERVER: &str = "WAYMARK_NATS_SERVER";

/// Oldest accepted server: 2.12 brings atomic batch publish (anchors-tech §2.2).
pub const MIN_VERSION: Version = Version {
    major: 2,
    minor: 12,
    patch: 0,
};

/// A `nats-server` release number, as printed by `nats-server --version`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl Version {
    /// Parses the first `vX.Y[.Z]` in `text` (e.g. `nats-server: v2.15.1`).
    /// A pre-release suffix such as `-RC.1` is ignored.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        text.split(|c: char| c.is_whitespace() || c == ':')
            .filter_map(|word| word.strip_prefix('v'))
            .find_map(|rest| {
                let core = rest.split(['-', '+']).next()?;
                let mut parts = core.split('.').map(str::parse::<u32>);
                let major = parts.next()?.ok()?;
                let minor = parts.next()?.ok()?;
                let patch = parts.next().transpose().ok()?.unwrap_or(0);
                Some(Self {
                    major,
                    minor,
                    patch,
                })
            })
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// Where to look for `nats-server`. [`SearchInputs::from_env`] reads the real
/// environment; tests build one by hand to exercise each branch.
#[derive(Debug, Clone, Default)]
pub struct SearchInputs {
    /// Value of `$WAYMARK_NATS_SERVER`; `None` or empty means unset.
    pub env_override: Option<OsString>,
    /// Value of `$PATH`.
    pub path: Option<OsString>,
    /// Directory holding the pinned binary, normally `<workspace>/.tools/bin`.
    pub tools_dir: Option<PathBuf>,
}

impl SearchInputs {
    /// The inputs of this process: its environment and the workspace's `.tools/bin`.
    #[must_use]
    pub fn from_env() -> Self {
        Self {
            env_override: std::env::var_os(ENV_NATS_SERVER),
            path: std::env::var_os("PATH"),
            tools_dir: Some(workspace_root().join(".tools").join("bin")),
        }
    }
}

/// A usable `nats-server` and how it was chosen.
#[derive(Debug, Clone)]
pub struct FoundBinary {
    /// Path of the binary.
    pub path: PathBuf,
    /// Its version.
    pub version: Version,
    /// Candidates that were skipped on the way, and why.
    pub notes: Vec<String>,
}

/// The workspace root: two levels above this crate's manifest.
#[must_use]
pub fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .nth(2)
        .unwrap_or(manifest)
        .to_path_buf()
}

/// Absolute path of the script that installs the pinned server.
#[must_use]
pub fn install_script() -> PathBuf {
    workspace_root().join(".ci").join("install-nats")
}

/// Finds a usable `nats-server` following the order in the module docs.
///
/// # Errors
/// [`Error::NotFound`] when no candidate exists or all are too old or broken;
/// its message lists what was searched, why candidates were skipped, and the
/// command that installs the pinned server.
pub fn find_nats_server(inputs: &SearchInputs) -> Result<FoundBinary> {
    let mut notes = Vec::new();
    let mut looked_in = Vec::new();
    let mut candidates = Vec::new();
    if let Some(path) = inputs.env_override.as_ref().filter(|v| !v.is_empty()) {
        looked_in.push(format!("${ENV_NATS_SERVER}={}", Path::new(path).display()));
        candidates.push(PathBuf::from(path));
    } else {
        looked_in.push(format!("${ENV_NATS_SERVER}"));
        looked_in.push("PATH".to_owned());
        if let Some(path) = &inputs.path {
            candidates.extend(std::env::split_paths(path).map(|dir| dir.join("nats-server")));
        }
        if let Some(dir) = &inputs.tools_dir {
            looked_in.push(dir.display().to_string());
            candidates.push(dir.join("nats-server"));
        }
    }
    let explicit = inputs.env_override.as_ref().is_some_and(|v| !v.is_empty());
    for path in candidates {
        if !explicit && !path.is_file() {
            continue;
        }
        match probe_version(&path) {
            Ok(version) if version >= MIN_VERSION => {
                return Ok(FoundBinary {
                    path,
                    version,
                    notes,
                });
            }
            Ok(version) => notes.push(format!(
                "{} is v{version}, older than {}.{}",
                path.display(),
                MIN_VERSION.major,
                MIN_VERSION.minor
            )),
            Err(why) => notes.push(format!("{}: {why}", path.display())),
        }
    }
    Err(Error::NotFound {
        looked_in: looked_in.join(", "),
        notes: if notes.is_empty() {
            String::new()
        } else {
            format!("; skipped: {}", notes.join("; "))
        },
        min: MIN_VERSION,
        script: install_script(),
    })
}

/// [`find_nats_server`] on this process's inputs, computed once per process;
/// skip notes are printed to stderr the first time.
///
/// # Errors
/// As [`find_nats_server`].
pub fn nats_server_binary() -> Result<PathBuf> {
    static FOUND: OnceLock<PathBuf> = OnceLock::new();
    if let Some(path) = FOUND.get() {
        return Ok(path.clone());
    }
    let found = find_nats_server(&SearchInputs::from_env())?;
    for note in &found.notes {
        eprintln!("waymark-testkit: skipped {note}");
    }
    Ok(FOUND.get_or_init(|| found.path).clone())
}

/// Runs `<path> --version` and parses the answer.
fn probe_version(path: &Path) -> std::result::Result<Version, String> {
    let output = Command::new(path)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| format!("cannot run --version: {e}"))?;
    let text = String::from_utf8_lossy(&output.stdout);
    Version::parse(&text).ok_or_else(|| format!("unrecognised --version output {:?}", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_versions() {
        let v = |major, minor, patch| {
            Some(Version {
                major,
                minor,
                patch,
            })
        };
        assert_eq!(Version::parse("nats-server: v2.15.1\n"), v(2, 15, 1));
        assert_eq!(Version::parse("nats-server: v2.9.10"), v(2, 9, 10));
        assert_eq!(Version::parse("nats-server: v2.12.0-RC.3"), v(2, 12, 0));
        assert_eq!(Version::parse("version v2.12"), v(2, 12, 0));
        assert_eq!(Version::parse("nats-server"), None);
        assert!(Version::parse("v2.9.10").unwrap() < MIN_VERSION);
        assert!(Version::parse("v2.12.0").unwrap() >= MIN_VERSION);
    }

    #[test]
    fn explicit_override_that_does_not_exist_is_not_replaced() {
        let inputs = SearchInputs {
            env_override: Some("/nonexistent/nats-server".into()),
            path: std::env::var_os("PATH"),
            tools_dir: SearchInputs::from_env().tools_dir,
        };
        let message = find_nats_server(&inputs).unwrap_err().to_string();
        assert!(
            message.contains("$WAYMARK_NATS_SERVER=/nonexistent/nats-server"),
            "{message}"
        );
        assert!(message.contains("bash .ci/install-nats"), "{message}");
    }
}
