//! `oversqlite`: the command-line tool. Parses the command line (clap), runs one
//! subcommand (`commands/`), prints its result (text, or JSON with `--json`) and exits
//! with a code that tells "retry later" (75) from "fix something" (see `exit.rs`).
#![forbid(unsafe_code)]

mod args;
mod commands;
mod db;
mod exit;
mod failure;
mod progress;
mod token;

use std::process::ExitCode;

use clap::error::ErrorKind as ClapKind;
use clap::Parser;

use args::Cli;
use exit::Exit;
use failure::Failure;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => return usage_error(e),
    };
    let command = cli.command.name();
    match commands::run(&cli) {
        Ok(out) => {
            if cli.json {
                println!("{}", out.json);
            } else {
                println!("{}", out.text);
            }
            ExitCode::SUCCESS
        }
        Err(f) => fail(&f, command, cli.json),
    }
}

fn fail(f: &Failure, command: &str, json: bool) -> ExitCode {
    if json {
        eprintln!("{}", f.to_json(command));
    } else {
        eprintln!("{}", f.line(command));
    }
    ExitCode::from(f.exit.code())
}

/// `--help` and `--version` print and exit 0; anything else clap refuses (including a
/// missing subcommand) is exit 64.
fn usage_error(e: clap::Error) -> ExitCode {
    if matches!(e.kind(), ClapKind::DisplayHelp | ClapKind::DisplayVersion) {
        let _ = e.print();
        return ExitCode::SUCCESS;
    }
    if std::env::args().any(|a| a == "--json") {
        let text = e.render().to_string();
        let first = text.lines().next().unwrap_or_default();
        let message = first.trim_start_matches("error: ").to_string();
        let f = Failure::new("invalid_argument", Exit::Usage, message);
        eprintln!("{}", f.to_json("usage"));
    } else {
        // clap's own text names the offending argument and shows the usage line.
        let _ = e.print();
    }
    ExitCode::from(Exit::Usage.code())
}
