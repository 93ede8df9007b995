//! `bookinfo up`: the whole lab in one process, with the control plane API for `meshctl`.
//!
//! Run with `cargo run --release -p services --bin bookinfo -- up`, then
//! `curl http://127.0.0.10:9080/productpage`.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use mesh::control::ControlPlaneOptions;
use services::lab::{Lab, LabOptions, DEFAULT_BASE_IP};
use tokio_util::sync::CancellationToken;

#[path = "bookinfo/serve.rs"]
mod serve;

#[derive(Debug, Parser)]
#[command(
    name = "bookinfo",
    version,
    about = "Run Bookinfo on meshlab's in-process mesh"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start every Bookinfo workload and the control plane, and serve until interrupted.
    Up {
        /// Address of the first workload (productpage); the others follow it.
        #[arg(long, default_value_t = DEFAULT_BASE_IP)]
        base_ip: Ipv4Addr,
        /// Address of the control plane API that `meshctl` talks to.
        #[arg(long, default_value = mesh::control::DEFAULT_API_ADDR)]
        control_plane: SocketAddr,
        /// Lifetime of workload certificates, e.g. `24h` or `30s`; renewed at half-life.
        #[arg(long, default_value = "24h", value_parser = humantime::parse_duration)]
        svid_lifetime: Duration,
    },
    /// Run one workload with its sidecar against a networked control plane (one container).
    Serve(serve::ServeArgs),
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    if let Err(error) = run(Cli::parse()).await {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let (base_ip, control_plane, svid_lifetime) = match cli.command {
        Command::Up {
            base_ip,
            control_plane,
            svid_lifetime,
        } => (base_ip, control_plane, svid_lifetime),
        Command::Serve(args) => return serve::run(args).await,
    };
    let options = LabOptions {
        base_ip: Some(base_ip),
        control: ControlPlaneOptions {
            svid_lifetime,
            ..ControlPlaneOptions::default()
        },
        ..LabOptions::default()
    };
    let lab = Lab::start(options).await.context("starting the lab")?;
    let listener = tokio::net::TcpListener::bind(control_plane)
        .await
        .with_context(|| format!("binding the control plane API on {control_plane}"))?;
    let shutdown = CancellationToken::new();
    tokio::spawn(mesh::control::api::serve(
        lab.control().clone(),
        listener,
        shutdown.clone(),
    ));

    println!("meshlab Bookinfo is up. Workloads:");
    for (spec, ip) in lab.workloads() {
        let ports: Vec<String> = spec
            .ports
            .iter()
            .map(|(_, target)| target.to_string())
            .collect();
        println!(
            "  {:<16} {:<10} http://{}:{}   spiffe://cluster.local/ns/{}/sa/{}",
            spec.name,
            spec.namespace,
            ip,
            ports.join(","),
            spec.namespace,
            spec.service_account
        );
    }
    println!("Control plane API: http://{control_plane} (meshctl's default)");
    println!("Try: curl http://{base_ip}:9080/productpage");
    println!("Press Ctrl-C to stop.");

    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    tracing::info!("Interrupted, stopping every workload");
    shutdown.cancel();
    lab.shutdown();
    Ok(())
}
