//! `authctl`: manage API keys and sessions, rotate the signing key, set up
//! AWS resources, and serve the API locally on the same handler code as the
//! Lambdas. `main` only parses arguments and turns the outcome into an exit code.

mod backend;
mod cli;
mod error;
mod keys;
mod serve;
mod sessions;
mod setup;

use std::process::ExitCode;

use crate::cli::Command;

#[tokio::main]
async fn main() -> ExitCode {
    auth_shared::telemetry::install_panic_hook();
    let cli = cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(&cli.backend, args).await,
        Command::Keys(command) => keys::run(&cli.backend, command).await,
        Command::Sessions(command) => sessions::run(&cli.backend, command).await,
        Command::Events(args) => keys::events(&cli.backend, args).await,
        Command::Setup(args) => setup::setup(&cli.backend, args).await,
        Command::RotateSigningKey(args) => setup::rotate_signing_key(&cli.backend, args).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let e = e.on(&cli.backend);
            eprintln!("authctl: {e}");
            e.exit_code()
        }
    }
}
