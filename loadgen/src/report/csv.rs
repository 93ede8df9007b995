//! CSV report: one row per load run and phase, for spreadsheets and plots.

use std::io::{self, Write};

use crate::report::json::{LoadJson, CORRECTED_TOTAL};

/// Column names of the CSV report, in order.
pub const HEADER: &str = "run,phase,mode,connections,requested_qps,achieved_qps,sent,errors,\
count,min_us,mean_us,p50_us,p75_us,p90_us,p99_us,p999_us,max_us";

/// Writes the header and one row per measured phase of every run; phases
/// without values are left out.
pub fn write(out: &mut dyn Write, runs: &[LoadJson]) -> io::Result<()> {
    writeln!(out, "{HEADER}")?;
    for run in runs {
        let phases = run
            .latency
            .iter()
            .map(|(phase, summary)| (phase.as_str(), summary))
            .chain(run.corrected_total.iter().map(|s| (CORRECTED_TOTAL, s)));
        for (phase, summary) in phases {
            if summary.count == 0 {
                continue;
            }
            writeln!(
                out,
                "{},{phase},{},{},{},{:.1},{},{},{},{},{:.1},{},{},{},{},{},{}",
                escape(&run.label),
                run.mode,
                run.connections,
                run.requested_qps,
                run.achieved_qps,
                run.sent,
                run.errors,
                summary.count,
                summary.min_us,
                summary.mean_us,
                summary.p50_us,
                summary.p75_us,
                summary.p90_us,
                summary.p99_us,
                summary.p999_us,
                summary.max_us,
            )?;
        }
    }
    Ok(())
}

/// Quotes a field as RFC 4180 requires when it contains a comma, quote or
/// line break.
fn escape(field: &str) -> String {
    if field.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", field.replace('"', "\"\""))
    } else {
        field.to_owned()
    }
}
