//! `loadgen load URL`: a Fortio-style load run from outside the mesh, or from
//! inside it as one workload of an embedded lab.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use mesh::sidecar::SendOptions;
use services::lab::LabOptions;
use tokio_util::sync::CancellationToken;

use super::{
    report_error, write_file, write_outputs, LoadArgs, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED,
};
use crate::cpu::{CpuTime, CpuUsed};
use crate::driver::LabDriver;
use crate::embedded::EmbeddedLab;
use crate::load::http_client::{HttpSender, HttpTarget};
use crate::load::mesh_client::{MeshSender, MeshTarget};
use crate::load::{run_senders, Schedule, Sender};
use crate::progress::ProgressBar;
use crate::report::json::{LoadDocument, LoadJson, ThresholdJson, SCHEMA_VERSION};
use crate::report::table;
use crate::runner::LoadReport;
use crate::threshold;

/// Duration of a run bounded by `--requests` alone.
const MAX_DURATION: Duration = Duration::from_secs(600);

/// Shortest `--timeout`: tokio's timers fire on whole milliseconds.
const MIN_TIMEOUT: Duration = Duration::from_millis(1);

/// Duration of a run with neither `--duration` nor `--requests` (Fortio's default).
const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// Runs `loadgen load`, writing the report to `out`.
pub async fn run(args: LoadArgs, out: &mut dyn Write) -> ExitCode {
    let schedule = match schedule_of(&args) {
        Ok(schedule) => schedule,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    // Report files are created before the run, so a bad path fails in a
    // moment instead of after the whole load.
    if let Err(error) = check_output_paths(&args) {
        return report_error(error, EXIT_BAD_INPUT);
    }
    // The lab must outlive the senders that borrow its workload's client.
    let lab = match &args.from {
        Some(_) => match start_lab().await {
            Ok(lab) => Some(lab),
            Err(error) => return report_error(error, EXIT_FAILED),
        },
        None => None,
    };
    if let Some(lab) = &lab {
        if let Err(error) = apply_files(lab, &args.apply).await {
            return report_error(error, EXIT_BAD_INPUT);
        }
    }
    let mut senders = match build_senders(&args, lab.as_ref()).await {
        Ok(senders) => senders,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };

    if !args.warmup.is_zero() {
        let warmup = Schedule {
            duration: args.warmup,
            requests: None,
            ..schedule.clone()
        };
        run_senders(&mut senders, &warmup, None, None).await;
    }

    let start_time_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let cpu_before = CpuTime::now();
    let completed = Arc::new(AtomicU64::new(0));
    let progress = if args.no_progress {
        None
    } else {
        ProgressBar::start(completed.clone(), schedule.duration, schedule.requests)
    };
    // Ctrl-C ends the run early and still reports what was measured, as
    // Fortio does.
    let stop = CancellationToken::new();
    let interrupt = tokio::spawn({
        let stop = stop.clone();
        async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.cancel();
            }
        }
    });
    let outcome = run_senders(&mut senders, &schedule, Some(&completed), Some(&stop)).await;
    interrupt.abort();
    let cpu_used = CpuTime::now().since(cpu_before);
    if let Some(progress) = progress {
        progress.finish().await;
    }
    drop(senders);
    drop(lab);

    let label = label_of(&args);
    let report = LoadReport {
        qps: schedule.qps,
        connections: schedule.connections,
        duration: schedule.duration,
        requests: schedule.requests,
        outcome,
    };
    let _ = table::write_load_run(out, &label, &report);
    if stop.is_cancelled() {
        let _ = writeln!(out, "  note: interrupted; these are the results until then");
    }
    if let Some(requested) = schedule.requests {
        if report.outcome.sent < requested {
            let _ = writeln!(
                out,
                "  note: {} of {requested} requests sent before the {:?} duration ended",
                report.outcome.sent, schedule.duration
            );
        }
    }
    let mut run = LoadJson::new(&label, &report);
    run.process_cpu_us = Some(micros(cpu_used.total));
    run.process_user_cpu_us = cpu_used.user.map(micros);
    let _ = write_cpu(out, cpu_used, &report);
    let runs = std::slice::from_ref(&run);

    let mut thresholds = Vec::new();
    for threshold in &args.outputs.fail_if {
        let mut verdict = threshold.check(&run);
        // With a single run, a metric it did not measure fails the check, as
        // `check_all` decides below; the line and the JSON must agree.
        verdict.failed |= !verdict.measured;
        let _ = writeln!(
            out,
            "{}  --fail-if {}: {}",
            if verdict.failed { "FAIL" } else { "pass" },
            threshold.expression,
            verdict.actual
        );
        thresholds.push(ThresholdJson {
            expression: threshold.expression.clone(),
            failed: verdict.failed,
            actual: verdict.actual,
        });
    }
    let failures = threshold::check_all(&args.outputs.fail_if, runs);

    let document = LoadDocument {
        schema_version: SCHEMA_VERSION,
        generator: format!("loadgen {}", env!("CARGO_PKG_VERSION")),
        kind: "load".to_owned(),
        url: args.url.clone(),
        client: args.from.clone().unwrap_or_else(|| "plain".to_owned()),
        start_time_unix,
        thresholds,
        passed: failures.is_empty(),
        runs: vec![run.clone()],
    };
    if let Err(error) = write_reports(&args, &document, &label, runs) {
        return report_error(error, EXIT_FAILED);
    }

    if failures.is_empty() {
        ExitCode::from(EXIT_PASSED)
    } else {
        for failure in &failures {
            eprintln!("error: {failure}");
        }
        ExitCode::from(EXIT_FAILED)
    }
}

fn schedule_of(args: &LoadArgs) -> anyhow::Result<Schedule> {
    if !(args.qps.is_finite() && args.qps >= 0.0) {
        anyhow::bail!(
            "--qps {}: must be 0 (as fast as possible) or more",
            args.qps
        );
    }
    if args.connections == 0 {
        anyhow::bail!("--connections 0: at least one connection is needed");
    }
    if args.duration.is_some_and(|d| d.is_zero()) {
        anyhow::bail!("--duration 0: give a positive duration or use --requests");
    }
    if args.requests == Some(0) {
        anyhow::bail!("--requests 0: give at least one request");
    }
    if args.timeout < MIN_TIMEOUT {
        anyhow::bail!(
            "--timeout {:?}: give at least 1ms, the resolution of the loadgen's timers",
            args.timeout
        );
    }
    if args.resume && !args.new_connection {
        anyhow::bail!("--resume needs --new-connection: kept connections never resume");
    }
    let duration = match (args.duration, args.requests) {
        (Some(duration), _) => duration,
        (None, Some(_)) => MAX_DURATION,
        (None, None) => DEFAULT_DURATION,
    };
    Ok(Schedule {
        qps: args.qps,
        connections: args.connections,
        duration,
        requests: args.requests,
        timeout: args.timeout,
    })
}

async fn start_lab() -> anyhow::Result<EmbeddedLab> {
    // A free address range picked at random, so a `bookinfo up` or another
    // run on the default layout does not stop this one.
    let options = LabOptions {
        base_ip: None,
        ..LabOptions::default()
    };
    EmbeddedLab::start_with(options).await
}

async fn apply_files(lab: &EmbeddedLab, paths: &[PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        let yaml =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let origin = path.display().to_string();
        lab.apply(&yaml, &origin).await?;
    }
    Ok(())
}

/// Creates (or truncates) every report file the run will write, and rejects
/// two reports aimed at one file, where the last would silently replace the
/// first.
fn check_output_paths(args: &LoadArgs) -> anyhow::Result<()> {
    let outputs = &args.outputs;
    let named = [
        ("--json", &args.json),
        ("--csv", &outputs.csv),
        ("--html", &outputs.html),
    ];
    let paths: Vec<(&str, &PathBuf)> = named
        .into_iter()
        .filter_map(|(flag, path)| Some((flag, path.as_ref()?)))
        .collect();
    for (index, (flag, path)) in paths.iter().enumerate() {
        if let Some((other, _)) = paths[..index].iter().find(|(_, earlier)| earlier == path) {
            anyhow::bail!(
                "{other} and {flag} both name {}: give each report its own file",
                path.display()
            );
        }
    }
    for (_, path) in paths {
        std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    }
    Ok(())
}

async fn build_senders(
    args: &LoadArgs,
    lab: Option<&EmbeddedLab>,
) -> anyhow::Result<Vec<Box<dyn Sender>>> {
    let body = args.body.clone().map(Bytes::from).unwrap_or_default();
    let connections = args.connections as usize;
    let mut senders: Vec<Box<dyn Sender>> = Vec::with_capacity(connections);
    match (lab, &args.from) {
        (Some(lab), Some(workload)) => {
            let client = lab.lab().client(workload).with_context(|| {
                format!("--as {workload}: no such workload in the lab; use a Bookinfo workload such as productpage")
            })?;
            let options = SendOptions {
                raw: args.raw,
                new_connection: args.new_connection,
                resume: args.resume,
            };
            let target = MeshTarget::new(
                client,
                &args.url,
                &args.method,
                &args.headers,
                body,
                options,
            )?;
            let target = Arc::new(target);
            for _ in 0..connections {
                senders.push(Box::new(MeshSender::new(target.clone())));
            }
        }
        _ => {
            let target = HttpTarget::new(
                &args.url,
                &args.method,
                &args.headers,
                &body,
                args.new_connection,
            )
            .await?;
            let target = Arc::new(target);
            for _ in 0..connections {
                senders.push(Box::new(HttpSender::new(target.clone())));
            }
        }
    }
    Ok(senders)
}

fn write_cpu(out: &mut dyn Write, cpu: CpuUsed, report: &LoadReport) -> std::io::Result<()> {
    let elapsed = report.outcome.elapsed.as_secs_f64();
    let share = |time: Duration| {
        if elapsed > 0.0 {
            time.as_secs_f64() / elapsed * 100.0
        } else {
            0.0
        }
    };
    let per_request = cpu.total.as_secs_f64() * 1e6 / report.outcome.sent.max(1) as f64;
    let split = match (cpu.user, cpu.system()) {
        (Some(user), Some(system)) => {
            format!(": {:.1}% user, {:.1}% system", share(user), share(system))
        }
        _ => String::new(),
    };
    writeln!(
        out,
        "  process CPU: {:.3} s ({:.2}% of one core{split}), {per_request:.1} µs per request",
        cpu.total.as_secs_f64(),
        share(cpu.total),
    )
}

fn micros(time: Duration) -> u64 {
    u64::try_from(time.as_micros()).unwrap_or(u64::MAX)
}

fn label_of(args: &LoadArgs) -> String {
    if let Some(label) = &args.label {
        return label.clone();
    }
    let mut label = format!("{} {}", args.method, args.url);
    if let Some(workload) = &args.from {
        label.push_str(&format!(" as {workload}"));
        if args.raw {
            label.push_str(" (plaintext, sidecar skipped)");
        }
    }
    if args.new_connection {
        label.push_str(if args.resume {
            ", resumed handshake per request"
        } else {
            ", new connection per request"
        });
    }
    label
}

fn write_reports(
    args: &LoadArgs,
    document: &LoadDocument,
    title: &str,
    runs: &[LoadJson],
) -> anyhow::Result<()> {
    if let Some(path) = &args.json {
        write_file(path, |writer| {
            serde_json::to_writer_pretty(&mut *writer, document)?;
            writeln!(writer)
        })?;
    }
    write_outputs(&args.outputs, title, runs)
}
