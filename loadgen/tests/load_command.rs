//! Runs the `loadgen` binary against a small HTTP/1.1 server on 127.0.0.1
//! and checks its counts, reports and exit codes.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::thread;

use serde_json::Value;

/// Starts a keep-alive server and returns its base URL. It responds to `/ok`
/// with 200, `/fail` with 500, `/chunked` with a chunked 200, and `/continue`
/// with a 100 Continue before its 200. To HEAD it sends a head that announces
/// a body it does not send. The threads end with the test process.
fn start_server() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            thread::spawn(move || serve(stream));
        }
    });
    format!("http://{addr}")
}

fn serve(stream: TcpStream) {
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
        }
        let response: &[u8] = if request_line.starts_with("HEAD ") {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n"
        } else if request_line.contains("/continue") {
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
        } else if request_line.contains("/fail") {
            b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\nfail"
        } else if request_line.contains("/chunked") {
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"
        } else {
            b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nServer-Timing: authz;dur=0.003\r\n\r\nok"
        };
        if writer.write_all(response).is_err() {
            return;
        }
    }
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir()
        .join(format!("loadgen-it-{}", std::process::id()))
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn loadgen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .output()
        .unwrap()
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn closed_loop_counts_requests() {
    let url = format!("{}/ok", start_server());
    let dir = scratch("closed_loop_counts_requests");
    let json = dir.join("run.json");

    let output = loadgen(&[
        "load",
        &url,
        "--qps",
        "0",
        "-c",
        "2",
        "-n",
        "200",
        "--json",
        json.to_str().unwrap(),
        "--fail-if",
        "errors>0",
    ]);

    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("closed loop"), "{stdout}");
    assert!(stdout.contains("200 requests in"), "{stdout}");
    assert!(stdout.contains("pass  --fail-if errors>0"), "{stdout}");
    let document = read_json(&json);
    assert_eq!(document["schema_version"], 1);
    assert_eq!(document["kind"], "load");
    assert_eq!(document["passed"], true);
    let run = &document["runs"][0];
    assert_eq!(run["sent"], 200);
    assert_eq!(run["status_codes"]["200"], 200);
    assert_eq!(run["errors"], 0);
    assert_eq!(run["mode"], "closed");
    assert_eq!(run["latency"]["total"]["count"], 200);
    assert_eq!(run["latency"]["authz"]["count"], 200);
    assert_eq!(
        run["latency"]["connect"]["count"], 2,
        "one connect per connection"
    );
}

#[test]
fn open_loop_holds_rate_and_corrects() {
    let url = format!("{}/chunked", start_server());
    let dir = scratch("open_loop_holds_rate_and_corrects");
    let json = dir.join("run.json");

    let output = loadgen(&[
        "load",
        &url,
        "--qps",
        "200",
        "-c",
        "2",
        "-t",
        "500ms",
        "--json",
        json.to_str().unwrap(),
    ]);

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run = &read_json(&json)["runs"][0];
    assert_eq!(run["mode"], "open");
    assert_eq!(run["sent"], 100);
    assert_eq!(run["status_codes"]["200"], 100);
    assert_eq!(run["corrected_total"]["count"], 100);
}

#[test]
fn new_connection_connects_every_request() {
    let url = format!("{}/ok", start_server());
    let dir = scratch("new_connection_connects_every_request");
    let json = dir.join("run.json");

    let output = loadgen(&[
        "load",
        &url,
        "--qps",
        "0",
        "-c",
        "1",
        "-n",
        "20",
        "--new-connection",
        "--json",
        json.to_str().unwrap(),
    ]);

    assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
    let run = &read_json(&json)["runs"][0];
    assert_eq!(run["status_codes"]["200"], 20);
    assert_eq!(run["latency"]["connect"]["count"], 20);
}

#[test]
fn threshold_failure_exits_one() {
    let url = format!("{}/fail", start_server());

    let output = loadgen(&[
        "load",
        &url,
        "--qps",
        "0",
        "-n",
        "10",
        "--fail-if",
        "errors>0",
    ]);

    let stderr = text(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("threshold \"errors>0\" failed"), "{stderr}");
    assert!(text(&output.stdout).contains("500: 10"));
}

#[test]
fn refused_connections_counted_as_failures() {
    // Bind then drop a listener, so the port is very likely closed.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/ok");

    let output = loadgen(&[
        "load",
        &url,
        "--qps",
        "0",
        "-n",
        "5",
        "--fail-if",
        "failures>0",
    ]);

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("errors: refused: 5"), "{stdout}");
}

#[test]
fn invalid_threshold_exits_two() {
    let output = loadgen(&["load", "http://127.0.0.1:9/", "--fail-if", "p99>2"]);

    assert_eq!(output.status.code(), Some(2));
    assert!(text(&output.stderr).contains("needs a unit"));
}

#[test]
fn report_and_compare_read_saved_runs() {
    let base = start_server();
    let dir = scratch("report_and_compare_read_saved_runs");
    let first = dir.join("a.json");
    let second = dir.join("b.json");
    for (path, label) in [(&first, "plaintext"), (&second, "plaintext")] {
        let output = loadgen(&[
            "load",
            &format!("{base}/ok"),
            "--qps",
            "0",
            "-n",
            "50",
            "--label",
            label,
            "--json",
            path.to_str().unwrap(),
        ]);
        assert_eq!(output.status.code(), Some(0));
    }
    let html = dir.join("a.html");
    let csv = dir.join("a.csv");

    let report = loadgen(&[
        "report",
        first.to_str().unwrap(),
        "--html",
        html.to_str().unwrap(),
        "--csv",
        csv.to_str().unwrap(),
    ]);
    let compare = loadgen(&["compare", first.to_str().unwrap(), second.to_str().unwrap()]);

    assert_eq!(report.status.code(), Some(0), "{}", text(&report.stderr));
    let table = text(&report.stdout);
    assert!(
        table.contains("closed loop over 4 connections; 50 requests in"),
        "{table}"
    );
    assert!(table.contains("status codes: 200: 50"), "{table}");
    assert!(
        table
            .lines()
            .any(|line| line.trim_start().starts_with("total ")),
        "{table}"
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("<svg"));
    assert!(!page.contains("http://"), "no external references");
    assert!(!page.contains("https://"), "no external references");
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert!(
        rows.lines()
            .any(|line| line.starts_with("plaintext,total,closed,4,")),
        "{rows}"
    );
    assert_eq!(compare.status.code(), Some(0));
    let compared = text(&compare.stdout);
    assert!(compared.contains("total p50 (µs)"), "{compared}");
    assert!(compared.contains("qps"), "{compared}");
}

#[test]
fn head_and_interim_responses_complete() {
    let base = start_server();

    for (url, method) in [
        (format!("{base}/ok"), "HEAD"),
        (format!("{base}/continue"), "GET"),
    ] {
        let dir = scratch(&format!("interim-{method}"));
        let json = dir.join("run.json");
        let output = loadgen(&[
            "load",
            &url,
            "--method",
            method,
            "-n",
            "20",
            "-c",
            "2",
            "--qps",
            "0",
            "--timeout",
            "2s",
            "--no-progress",
            "--json",
            json.to_str().unwrap(),
        ]);

        assert_eq!(output.status.code(), Some(0), "{}", text(&output.stderr));
        let run = &read_json(&json)["runs"][0];
        assert_eq!(run["status_codes"]["200"], 20, "{method} {url}: {run}");
        assert_eq!(run["errors"], 0, "{method} {url}: {run}");
    }
}

#[test]
fn malformed_targets_exit_two() {
    let ok = format!("{}/ok", start_server());
    let cases: [(&[&str], &str); 8] = [
        (&["http://127.0.0.1:99999/ok"], "port"),
        (&["http://127.0.0.1:/ok"], "port"),
        (&["http://user:pw@127.0.0.1:1/ok"], "user information"),
        (&[&ok, "--method", "GET /x HTTP/1.1"], "invalid method"),
        (&[&ok, "-H", "Content-Length: 9"], "not allowed"),
        (&[&ok, "-t", "18446744073709551615s"], "at most 365 days"),
        (&[&ok, "--json", "/nonexistent/dir/run.json"], "creating"),
        (
            &[&ok, "--json", "same.out", "--csv", "same.out"],
            "both name same.out",
        ),
    ];
    for (arguments, expected) in cases {
        let mut all = vec!["load"];
        all.extend_from_slice(arguments);
        all.extend(["-n", "1", "--no-progress"]);

        let output = loadgen(&all);

        let stderr = text(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{arguments:?}: {stderr}");
        assert!(stderr.contains(expected), "{arguments:?}: {stderr}");
    }
}

#[test]
fn unmeasured_threshold_fails_consistently() {
    let base = start_server();
    let dir = scratch("unmeasured");
    let json = dir.join("run.json");

    let output = loadgen(&[
        "load",
        &format!("{base}/ok"),
        "-n",
        "5",
        "--qps",
        "0",
        "--no-progress",
        "--fail-if",
        "tls_handshake.p50>=600us",
        "--json",
        json.to_str().unwrap(),
    ]);

    let stdout = text(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("FAIL  --fail-if tls_handshake.p50>=600us"),
        "{stdout}"
    );
    let report = read_json(&json);
    assert_eq!(report["thresholds"][0]["failed"], true, "{report}");
    assert_eq!(report["passed"], false, "{report}");
}

#[test]
fn interrupted_run_still_reports() {
    let base = start_server();
    let dir = scratch("interrupted");
    let json = dir.join("run.json");
    let child = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args([
            "load",
            &format!("{base}/ok"),
            "--qps",
            "200",
            "-t",
            "60s",
            "--no-progress",
            "--json",
            json.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    thread::sleep(std::time::Duration::from_millis(1500));

    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    let output = child.wait_with_output().unwrap();

    assert!(kill.success());
    let stdout = text(&output.stdout);
    assert_eq!(
        output.status.code(),
        Some(0),
        "{stdout}{}",
        text(&output.stderr)
    );
    assert!(stdout.contains("interrupted"), "{stdout}");
    let run = &read_json(&json)["runs"][0];
    let sent = run["sent"].as_u64().unwrap();
    assert!(
        (100..=400).contains(&sent),
        "sent {sent} in about 1.5 s at 200 qps"
    );
    assert!(run["elapsed_us"].as_u64().unwrap() < 10_000_000, "{run}");
}
