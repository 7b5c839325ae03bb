//! The `unstick` command-line tool.

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "unstick",
    version,
    about = "Framed TCP tools: a remote shell and a file server"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {}

fn main() {
    let cli = Cli::parse();
    match cli.command {}
}
