//! The text report of a fixed run, as a snapshot (insta), and its smaller checks.
//! The human report for a fixed run, as a snapshot: any change to what people read shows
//! up in review (as hyperfine tests its exporters).
use std::time::{Duration, Instant, SystemTime};

use super::*;
use crate::gate::{self, Metric, Threshold};
use crate::model::{
    ClientCheck, ConnReport, Counts, Event, Sample, SetupFailure, SetupStamps, Tally,
};
use crate::outcome::Outcome;
use crate::result::{Settings, judge};
use crate::stats::{Recorder, Summary};

fn fixed_run() -> RunResult {
    let t0 = Instant::now();
    let ms = |n: u64| t0 + Duration::from_micros(n * 1000);
    let mut recorder = Recorder::default();
    recorder.record(Event::Measure { from: t0 });
    for conn in 0..2u64 {
        recorder.record(Event::Setup(SetupStamps {
            started: ms(0),
            tcp: t0 + Duration::from_micros(300 + 100 * conn),
            tls: None,
            upgraded: t0 + Duration::from_micros(900 + 100 * conn),
            acked: t0 + Duration::from_micros(1400 + 100 * conn),
        }));
    }
    // 2 connections, 1,000 requests each over 2 s; latency 1 ms, every 100th 4 ms.
    let mut samples = Vec::new();
    for i in 0..2000u64 {
        let sent = t0 + Duration::from_micros(i * 1000);
        let took = if i % 100 == 0 { 4000 } else { 1000 };
        samples.push(Sample {
            call: 0,
            conn: (i % 2) as u32,
            succeeded: true,
            scheduled: sent,
            ready: sent,
            queued: sent,
            sent,
            received: sent + Duration::from_micros(took),
            acked: None,
            first_chunk: None,
            stream_end: None,
        });
    }
    recorder.record(Event::Samples(samples));
    for sec in 0..2 {
        let tally = Tally {
            sent: 1001,
            succeeded: 1000,
            failed: 1,
            ..Tally::default()
        };
        recorder.record(Event::Tally {
            sec,
            tally,
            tools: Vec::new(),
            errors: Vec::new(),
        });
    }
    let report = |id: u32| ConnReport {
        id,
        opened: true,
        counts: Counts {
            sent: 1001,
            succeeded: 1000,
            failed: 1,
            ..Counts::default()
        },
        errors_by_code: [("OVER_CAPACITY".to_owned(), 1)].into(),
        up: Duration::from_secs(2),
        ..ConnReport::default()
    };
    let refused = ConnReport {
        id: 2,
        setup_failure: Some(SetupFailure {
            stage: "hello",
            reason: "rejected".into(),
            close_code: Some(1008),
            kind: crate::model::SetupKind::Refused,
        }),
        ..ConnReport::default()
    };
    let window = crate::stats::summary::Window {
        started_at: SystemTime::UNIX_EPOCH,
        ..crate::stats::summary::Window::closed("ws://127.0.0.1:8079", Duration::from_secs(2))
    };
    let summary = Summary::build(window, &[report(0), report(1), refused], recorder, |_| {
        ClientCheck {
            cpu_ms: 500.0,
            cores: 2,
            cpu_share: 0.125,
            cpu_us_per_request: Some(2.5),
            peak_rss_mb: 12.0,
            rss_per_conn_kb: Some(40.0),
            saturated: false,
            reasons: Vec::new(),
        }
    });
    let thresholds = [
        Threshold::new(Metric::Rps, 500.0),
        Threshold::new(Metric::P99, 5.0),
        Threshold::new(Metric::ErrorRate, 0.0),
        Threshold::new(Metric::ConnectionErrors, 0.0),
    ];
    let verdicts = gate::evaluate(&summary, &thresholds);
    let (outcome, reason) = judge(&summary, &verdicts);
    assert_eq!(outcome, Outcome::ThresholdFailed);
    RunResult {
        settings: Settings {
            conns: 3,
            inflight: 1,
            duration: Duration::from_secs(2),
            tool: "echo".into(),
            gate: true,
            ..Settings::default()
        },
        run_id: "00c0ffee".into(),
        summary,
        verdicts,
        outcome,
        reason,
        server: None,
        workers: Vec::new(),
        baseline: None,
    }
}

#[test]
fn the_text_report_of_a_fixed_run() {
    let text = String::from_utf8(TextReporter.render(&fixed_run()).unwrap()).unwrap();
    insta::assert_snapshot!(text);
}
