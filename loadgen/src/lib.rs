//! Scenario runner and latency measurement for the meshlab lab.
//!
//! Layout:
//! - [`scenario`]: the scenario file format and its validation.
//! - [`runner`]: runs a scenario's steps against a [`driver::LabDriver`].
//! - [`check`]: compares a response with a step's expectations.
//! - [`load`]: the load engine (open and closed loop).
//! - [`measure`]: HdrHistogram latencies per request phase.
//! - [`report`]: the terminal table and the JSON report.
//! - [`cli`]: the `loadgen` command line.
//! - [`cpu`]: the process's own CPU time.

pub mod check;
pub mod cli;
pub mod cpu;
pub mod driver;
pub mod embedded;
pub mod load;
pub mod measure;
pub mod progress;
pub mod remote;
pub mod report;
pub mod runner;
pub mod scenario;
pub mod threshold;

#[cfg(test)]
mod test_util;
