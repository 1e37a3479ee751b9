//! `waymark-node-check`: a node with health and reflection only.
//!
//! `--check-config` loads and validates the configuration and exits (0 valid,
//! 64 invalid) without binding anything; without it the node serves until
//! SIGTERM. Used as an operator pre-flight check and by this crate's tests.

use clap::Parser;
use waymark_node::{NodeArgs, RunError, Services};

/// Flags: only the node's own.
#[derive(Debug, Parser)]
#[command(name = "waymark-node-check", version)]
struct Args {
    #[command(flatten)]
    node: NodeArgs,
}

fn main() -> std::process::ExitCode {
    let args: Args = waymark_node::parse_args();
    waymark_node::main_with(&args.node, |config, shutdown| async move {
        let node = waymark_node::run(&config, Services::new(), shutdown).await?;
        node.wait().await?;
        Ok::<_, RunError>(())
    })
}
