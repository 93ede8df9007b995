//! `loadgen load URL`: a Fortio-style load run from outside the mesh, or from
//! inside it as one workload of an embedded lab.

use std::io::Write;
use std::process::ExitCode;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use bytes::Bytes;
use mesh::sidecar::SendOptions;
use services::lab::LabOptions;

use super::{
    report_error, write_file, write_outputs, LoadArgs, EXIT_BAD_INPUT, EXIT_FAILED, EXIT_PASSED,
};
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

/// Duration of a run with neither `--duration` nor `--requests` (Fortio's default).
const DEFAULT_DURATION: Duration = Duration::from_secs(5);

/// Runs `loadgen load`, writing the report to `out`.
pub async fn run(args: LoadArgs, out: &mut dyn Write) -> ExitCode {
    let schedule = match schedule_of(&args) {
        Ok(schedule) => schedule,
        Err(error) => return report_error(error, EXIT_BAD_INPUT),
    };
    // The lab must outlive the senders that borrow its workload's client.
    let lab = match &args.from {
        Some(_) => match start_lab(&args).await {
            Ok(lab) => Some(lab),
            Err(error) => return report_error(error, EXIT_FAILED),
        },
        None => None,
    };
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
        run_senders(&mut senders, &warmup, None).await;
    }

    let start_time_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let cpu_before = process_cpu_us();
    let completed = Arc::new(AtomicU64::new(0));
    let progress = if args.no_progress {
        None
    } else {
        ProgressBar::start(completed.clone(), schedule.duration, schedule.requests)
    };
    let outcome = run_senders(&mut senders, &schedule, Some(&completed)).await;
    let cpu_used = cpu_before
        .zip(process_cpu_us())
        .map(|(before, after)| after.since(before));
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
    let mut run = LoadJson::new(&label, &report);
    if let Some(cpu) = cpu_used {
        run.process_cpu_us = Some(cpu.user_us + cpu.system_us);
        run.process_user_cpu_us = Some(cpu.user_us);
        let _ = write_cpu(out, cpu, &report);
    }
    let runs = std::slice::from_ref(&run);

    let mut thresholds = Vec::new();
    for threshold in &args.outputs.fail_if {
        let verdict = threshold.check(&run);
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
    if args.timeout.is_zero() {
        anyhow::bail!("--timeout 0: give a positive timeout");
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

async fn start_lab(args: &LoadArgs) -> anyhow::Result<EmbeddedLab> {
    // A free address range picked at random, so a `bookinfo up` or another
    // run on the default layout does not stop this one.
    let options = LabOptions {
        base_ip: None,
        ..LabOptions::default()
    };
    let lab = EmbeddedLab::start_with(options).await?;
    for path in &args.apply {
        let yaml =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let origin = path.display().to_string();
        lab.apply(&yaml, &origin).await?;
    }
    Ok(lab)
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

fn write_cpu(out: &mut dyn Write, cpu: CpuTime, report: &LoadReport) -> std::io::Result<()> {
    let total_us = cpu.user_us + cpu.system_us;
    let elapsed = report.outcome.elapsed.as_secs_f64();
    let share = |micros: u64| {
        if elapsed > 0.0 {
            micros as f64 / 1e6 / elapsed * 100.0
        } else {
            0.0
        }
    };
    let per_request = total_us as f64 / report.outcome.sent.max(1) as f64;
    writeln!(
        out,
        "  process CPU: {:.2} s ({:.1}% of one core: {:.1}% user, {:.1}% system), {per_request:.1} µs per request",
        total_us as f64 / 1e6,
        share(total_us),
        share(cpu.user_us),
        share(cpu.system_us),
    )
}

/// CPU time of this process, split as the kernel accounts it.
#[derive(Clone, Copy, Debug)]
struct CpuTime {
    user_us: u64,
    system_us: u64,
}

impl CpuTime {
    fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user_us: self.user_us.saturating_sub(earlier.user_us),
            system_us: self.system_us.saturating_sub(earlier.system_us),
        }
    }
}

/// Clock ticks per second of `/proc` CPU times. Linux fixes USER_HZ at 100
/// on every architecture it exports to user space, so times have 10 ms
/// resolution.
const USER_HZ: u64 = 100;

/// Returns the CPU time (user plus system, all threads) this process has
/// used, from `/proc/self/stat`; `None` where there is no procfs.
fn process_cpu_us() -> Option<CpuTime> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name in brackets may contain spaces, so fields are counted
    // from the closing bracket: utime and stime are fields 14 and 15.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(CpuTime {
        user_us: user * 1_000_000 / USER_HZ,
        system_us: system * 1_000_000 / USER_HZ,
    })
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
