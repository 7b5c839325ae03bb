//! `unstick completions SHELL` and `unstick man`: tab completion scripts and manual pages,
//! generated from the same clap definitions that parse the command line, so they never fall
//! behind it.

use std::io;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Command};
use clap_complete::Shell;

use crate::exit_status::print_result;
use crate::man_page;

/// Options of `unstick completions`.
#[derive(Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for: bash, zsh, fish, powershell (or elvish).
    #[arg(value_enum)]
    shell: Shell,
}

/// Options of `unstick man`.
#[derive(Args, Debug)]
pub struct ManArgs {
    /// Write a page per command (unstick.1, unstick-shell-connect.1, ...) into this directory
    /// instead of the main page to stdout.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// Writes the completion script for `args.shell` to stdout.
pub fn completions(args: &CompletionsArgs, mut command: Command) -> ExitCode {
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, name, &mut script);
    print_result(&script, "completions")
}

/// Writes the manual page of `unstick` to stdout, or every command's page into `args.dir`
/// ([`man_page`] adds the sections clap_mangen has none of).
pub fn man(args: &ManArgs, command: Command) -> ExitCode {
    let written = match &args.dir {
        Some(dir) => std::fs::create_dir_all(dir)
            .and_then(|()| man_page::all_pages(command))
            .and_then(|pages| {
                pages
                    .iter()
                    .try_for_each(|(name, page)| std::fs::write(dir.join(name), page))
            })
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", dir.display()))),
        None => {
            let mut command = command.disable_help_subcommand(true);
            command.build();
            return match man_page::page(command) {
                Ok(page) => print_result(&page, "man"),
                Err(e) => {
                    eprintln!("unstick man: {e}");
                    ExitCode::FAILURE
                }
            };
        }
    };
    match written {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("unstick man: {e}");
            ExitCode::FAILURE
        }
    }
}
