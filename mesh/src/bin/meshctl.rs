//! `meshctl`: apply and inspect Istio security policies on a running meshlab lab.
//!
//! Run `bookinfo up` first, then for example:
//! `meshctl apply -f scenarios/policies/mtls-strict.yaml`.

use clap::Parser;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = mesh::ctl::Cli::parse();
    match mesh::ctl::run(cli).await {
        Ok(output) => print!("{output}"),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}
