//! `waymark keys`: agency signing keys.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use waymark_crypto::AgencyKey;

/// `waymark keys ...`
#[derive(Debug, Subcommand)]
pub(crate) enum KeysCommand {
    /// Generate a new Ed25519 signing key into a new file (mode 0600; an
    /// existing file is never overwritten) and print its key id.
    Generate {
        /// Where to write the secret key file.
        #[arg(long)]
        out: PathBuf,
    },
    /// Print the key id and public key of a key file.
    Show {
        /// The secret key file.
        file: PathBuf,
    },
}

/// Runs a `keys` subcommand.
pub(crate) fn run(cmd: KeysCommand) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    match cmd {
        KeysCommand::Generate { out: path } => {
            let key = AgencyKey::generate();
            // KeyFileError already names the file and the failed step.
            key.save(&path)?;
            writeln!(out, "{}", key.key_id())?;
        }
        KeysCommand::Show { file } => {
            let key = AgencyKey::load(&file)?;
            writeln!(out, "key-id: {}", key.key_id())?;
            writeln!(out, "public: {}", hex::encode(key.public_key().as_bytes()))?;
        }
    }
    Ok(ExitCode::SUCCESS)
}
