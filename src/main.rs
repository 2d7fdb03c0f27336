//! The `vpnshop` command: parses the CLI and hands over to `app` and `cli`.

use clap::Parser;

fn main() -> std::process::ExitCode {
    // rustls needs its crypto provider before any TLS client (Sentry, reqwest, sqlx) is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let args = vpnshop::cli::Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(vpnshop::cli::execute(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", vpnshop::cli::error_text(&e));
            std::process::ExitCode::from(vpnshop::cli::exit_code(&e))
        }
    }
}
