//! `loadgen compare`: the differences between two saved runs.

use std::io::{self, Write};

use crate::measure::PHASES;
use crate::report::json::LoadJson;

/// Writes, for every run present in both reports, the main figures of each
/// side and the relative change from `before` to `after`. Runs are matched
/// by label, or by position when no label matches.
pub fn write(
    out: &mut dyn Write,
    before_name: &str,
    before: &[LoadJson],
    after_name: &str,
    after: &[LoadJson],
) -> io::Result<()> {
    let pairs = match_runs(before, after);
    if pairs.is_empty() {
        writeln!(out, "no load runs to compare")?;
        return Ok(());
    }
    writeln!(out, "A: {before_name}")?;
    writeln!(out, "B: {after_name}")?;
    if pairs.len() < before.len().max(after.len()) {
        writeln!(
            out,
            "note: {} pair(s) of runs compared; A has {} runs and B has {}, and runs pair by label, or by position when no label matches",
            pairs.len(),
            before.len(),
            after.len()
        )?;
    }
    for (a, b) in pairs {
        writeln!(out)?;
        if a.label == b.label {
            writeln!(out, "{}", a.label)?;
        } else {
            writeln!(out, "{} | {}", a.label, b.label)?;
        }
        writeln!(
            out,
            "  {:<24} {:>12} {:>12} {:>9}",
            "metric", "A", "B", "change"
        )?;
        write_row(out, "qps", a.achieved_qps, b.achieved_qps, "")?;
        write_row(out, "errors", a.errors as f64, b.errors as f64, "")?;
        for phase in PHASES {
            let (sa, sb) = match (a.phase(phase), b.phase(phase)) {
                (Some(sa), Some(sb)) => (sa, sb),
                (None, None) => continue,
                // A phase only one run has (a TLS handshake, a sidecar's
                // authz time) is shown, not dropped, because it is often the
                // point of the comparison.
                (Some(_), None) => {
                    writeln!(out, "  {phase:<24} {:>12} {:>12}", "measured", "-")?;
                    continue;
                }
                (None, Some(_)) => {
                    writeln!(out, "  {phase:<24} {:>12} {:>12}", "-", "measured")?;
                    continue;
                }
            };
            let rows = [
                ("p50", sa.p50_us, sb.p50_us),
                ("p90", sa.p90_us, sb.p90_us),
                ("p99", sa.p99_us, sb.p99_us),
                ("p99.9", sa.p999_us, sb.p999_us),
                ("max", sa.max_us, sb.max_us),
            ];
            for (statistic, va, vb) in rows {
                let name = format!("{phase} {statistic} (µs)");
                write_row(out, &name, va as f64, vb as f64, "")?;
            }
        }
        if let (Some(ca), Some(cb)) = (&a.corrected_total, &b.corrected_total) {
            write_row(
                out,
                "corrected p99 (µs)",
                ca.p99_us as f64,
                cb.p99_us as f64,
                "",
            )?;
        }
    }
    Ok(())
}

/// Pairs runs with the same label; when none match, pairs them by position.
pub fn match_runs<'a>(
    before: &'a [LoadJson],
    after: &'a [LoadJson],
) -> Vec<(&'a LoadJson, &'a LoadJson)> {
    let by_label: Vec<(&LoadJson, &LoadJson)> = before
        .iter()
        .filter_map(|a| Some((a, after.iter().find(|b| b.label == a.label)?)))
        .collect();
    if by_label.is_empty() {
        before.iter().zip(after).collect()
    } else {
        by_label
    }
}

fn write_row(out: &mut dyn Write, name: &str, a: f64, b: f64, unit: &str) -> io::Result<()> {
    writeln!(
        out,
        "  {name:<24} {:>12} {:>12} {:>9}",
        format!("{a:.1}{unit}"),
        format!("{b:.1}{unit}"),
        change(a, b)
    )
}

/// Returns the relative change from `a` to `b` as a signed percentage.
pub fn change(a: f64, b: f64) -> String {
    if a == b {
        "0.0%".to_owned()
    } else if a == 0.0 {
        "new".to_owned()
    } else {
        format!("{:+.1}%", (b - a) / a * 100.0)
    }
}
