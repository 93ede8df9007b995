use super::*;
use crate::test_util::{Reply, ScriptedLab};

fn plan(qps: f64, connections: u32, duration: Duration, requests: Option<u64>) -> LoadPlan {
    LoadPlan {
        request: RequestSpec {
            from: "sleep".into(),
            to: "details".into(),
            port: None,
            method: "GET".into(),
            path: "/details/0".into(),
            headers: Vec::new(),
            body: Bytes::new(),
            raw_client: false,
            new_connection: false,
        },
        schedule: Schedule {
            qps,
            connections,
            duration,
            requests,
            timeout: SEND_TIMEOUT,
        },
    }
}

#[tokio::test(start_paused = true)]
async fn open_loop_holds_rate() {
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(5)));

    let outcome = run_load(&lab, &plan(100.0, 2, Duration::from_secs(1), None)).await;

    assert_eq!(outcome.sent, 100);
    assert_eq!(outcome.statuses[&200], 100);
    let qps = outcome.achieved_qps();
    assert!((99.0..=101.0).contains(&qps), "achieved {qps} qps");
    let corrected = outcome.corrected.as_ref().unwrap();
    assert_eq!(corrected.count(), 100);
    assert!(
        corrected.quantile_us(1.0) <= 5_100,
        "no request waited past its due time"
    );
}

#[tokio::test(start_paused = true)]
async fn open_loop_corrects_coordinated_omission() {
    // One request stalls for a second on a single connection; every request
    // due during the stall goes out late.
    let lab = ScriptedLab::new(|index, _| {
        let delay = if index == 10 { 1000 } else { 1 };
        Reply::status(200, Duration::from_millis(delay))
    });

    let outcome = run_load(&lab, &plan(100.0, 1, Duration::from_secs(2), None)).await;

    assert_eq!(outcome.sent, 200, "late requests are still sent");
    let uncorrected = &outcome.phases.total;
    let corrected = outcome.corrected.as_ref().unwrap();
    assert_eq!(uncorrected.count(), 200);
    assert_eq!(corrected.count(), 200);
    assert!(
        uncorrected.quantile_us(0.90) <= 1_100,
        "uncorrected p90 stays near 1 ms"
    );
    assert!(
        uncorrected.quantile_us(1.0) >= 999_000,
        "the stall itself is recorded"
    );
    assert!(
        corrected.quantile_us(0.90) >= 100_000,
        "corrected p90 {} µs must show the queued requests",
        corrected.quantile_us(0.90)
    );
    assert!(corrected.quantile_us(0.50) >= 1_000);
}

#[tokio::test(start_paused = true)]
async fn open_loop_stops_at_deadline_when_behind() {
    // 10 ms per request on one connection can serve 100 of the 1000 requests due.
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(10)));

    let outcome = run_load(&lab, &plan(1000.0, 1, Duration::from_secs(1), None)).await;

    assert!(
        outcome.sent <= 101,
        "sent {} past the deadline",
        outcome.sent
    );
    assert!(
        outcome.elapsed <= Duration::from_millis(1010),
        "{:?}",
        outcome.elapsed
    );
    assert!(outcome.achieved_qps() < 110.0);
}

#[tokio::test(start_paused = true)]
async fn closed_loop_stops_at_request_count() {
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(10)));

    let outcome = run_load(&lab, &plan(0.0, 5, Duration::from_secs(60), Some(50))).await;

    assert_eq!(outcome.sent, 50);
    assert_eq!(outcome.elapsed, Duration::from_millis(100));
    assert!(outcome.corrected.is_none());
    assert!((499.0..=501.0).contains(&outcome.achieved_qps()));
}

#[tokio::test(start_paused = true)]
async fn closed_loop_stops_at_duration() {
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(10)));

    let outcome = run_load(&lab, &plan(0.0, 1, Duration::from_secs(1), None)).await;

    assert_eq!(outcome.sent, 100);
}

#[tokio::test(start_paused = true)]
async fn failures_counted_apart_from_statuses() {
    let lab = ScriptedLab::new(|index, _| match index % 4 {
        0 => Reply::status(200, Duration::from_millis(1)),
        1 => Reply::status(403, Duration::from_millis(1)),
        2 => Reply::failure(SendFailure::Reset),
        _ => Reply::failure(SendFailure::TlsHandshake("unknown ca".into())),
    });

    let outcome = run_load(&lab, &plan(0.0, 1, Duration::from_secs(60), Some(40))).await;

    assert_eq!(outcome.sent, 40);
    assert_eq!(outcome.statuses.get(&200), Some(&10));
    assert_eq!(outcome.statuses.get(&403), Some(&10));
    assert_eq!(outcome.failures.get("reset"), Some(&10));
    assert_eq!(outcome.failures.get("tls_handshake"), Some(&10));
    assert_eq!(
        outcome
            .failure_messages
            .get("TLS handshake failed: unknown ca"),
        Some(&10)
    );
    assert_eq!(
        outcome.phases.total.count(),
        20,
        "only responses have latencies"
    );
}

#[tokio::test(start_paused = true)]
async fn hung_request_times_out() {
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_secs(3600)));

    let outcome = run_load(&lab, &plan(0.0, 1, Duration::from_secs(1), None)).await;

    assert_eq!(outcome.sent, 1);
    assert_eq!(outcome.failures.get("timeout"), Some(&1));
    assert_eq!(outcome.elapsed, SEND_TIMEOUT);
}

#[tokio::test(start_paused = true)]
async fn low_rate_run_lasts_its_duration() {
    // At 2 qps for 2 s the last request is due at 1.5 s. The rate is still
    // 2 qps over the run, not 4 requests over 1.5 s.
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(1)));

    let outcome = run_load(&lab, &plan(2.0, 1, Duration::from_secs(2), None)).await;

    assert_eq!(outcome.sent, 4);
    assert_eq!(outcome.elapsed, Duration::from_secs(2));
    assert_eq!(outcome.achieved_qps(), 2.0);
}

#[tokio::test(start_paused = true)]
async fn counted_run_lasts_until_last_response() {
    let lab = ScriptedLab::new(|_, _| Reply::status(200, Duration::from_millis(10)));

    let outcome = run_load(&lab, &plan(0.0, 1, Duration::from_secs(60), Some(5))).await;

    assert_eq!(outcome.sent, 5);
    assert_eq!(outcome.elapsed, Duration::from_millis(50));
}
