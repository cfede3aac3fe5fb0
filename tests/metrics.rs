//! Live metrics against real processes: the OpenMetrics endpoint scraped mid-run and after
//! the run (its final figures equal the JSON report's, series by series), the server's
//! endpoint against the run, and the OTLP/HTTP push decoded by an in-process receiver.

mod common;

use std::collections::BTreeMap;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{closed_port, read_json, spawn_serve, temp_path, terminate, terminate_with};

/// The load both tests run: 4 connections x 4 in flight, a 70/30 mix, for `secs`, no gate.
fn mixed_run(url: &str, secs: &str) -> Vec<String> {
    let args = [
        "run",
        "--url",
        url,
        "--mix",
        "search=70,fetch=30",
        "-c",
        "4",
    ];
    let more = [
        "--inflight",
        "4",
        "-d",
        secs,
        "--no-gate",
        "--progress",
        "off",
    ];
    args.iter().chain(&more).map(|s| s.to_string()).collect()
}

/// GET /metrics over a plain socket; the body.
fn scrape(addr: &str) -> Option<String> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: {addr}\r\nAccept: application/openmetrics-text\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let (head, body) = text.split_once("\r\n\r\n")?;
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("application/openmetrics-text"), "{head}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    Some(body.to_owned())
}

/// Sample name -> {labels without run_id/worker} -> value.
type Samples = BTreeMap<String, BTreeMap<String, f64>>;

fn parse(body: &str) -> Samples {
    let mut out = Samples::new();
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("name value");
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, l.trim_end_matches('}')),
            None => (series, ""),
        };
        let labels: Vec<&str> = labels
            .split(',')
            .filter(|l| !l.is_empty() && !l.starts_with("run_id=") && !l.starts_with("worker="))
            .collect();
        out.entry(name.to_owned())
            .or_default()
            .insert(labels.join(","), value.parse().expect("number"));
    }
    out
}

fn get(s: &Samples, name: &str, labels: &str) -> u64 {
    s.get(name)
        .and_then(|m| m.get(labels))
        .copied()
        .unwrap_or(0.0) as u64
}

#[test]
fn a_scrape_mid_run_is_live_and_the_last_one_equals_the_report() {
    let server_metrics = format!("127.0.0.1:{}", closed_port());
    let (serve, url) = spawn_serve(
        &[
            "--error-rate",
            "0.03",
            "--tool-delay",
            "search=0ms,fetch=1ms",
            "--metrics-listen",
            &server_metrics,
        ],
        &[],
    );
    let metrics = format!("127.0.0.1:{}", closed_port());
    let (_dir, json) = temp_path("r.json");
    let run = Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
        .args(mixed_run(&url, "4s"))
        .args(["--metrics-listen", &metrics, "--metrics-linger", "30s"])
        .args(["--output", "quiet", "--json"])
        .arg(&json)
        .env_remove("WSBENCH_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run starts");

    // Mid-run: the first scrape with traffic in it, before the report exists.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mid = loop {
        assert!(Instant::now() < deadline, "no live scrape");
        if let Some(body) = scrape(&metrics).map(|b| parse(&b))
            && get(
                &body,
                "wsbench_requests_total",
                "tool=\"search\",outcome=\"succeeded\"",
            ) > 1000
        {
            break body;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(!json.exists(), "the scrape was taken mid-run");
    let excerpt: String = (scrape(&metrics).expect("scrape"))
        .lines()
        .filter(|l| l.starts_with("wsbench_requests_total") || l.contains("last_second"))
        .map(|l| format!("{l}\n"))
        .collect();
    println!("mid-run scrape excerpt:\n{excerpt}");
    assert_eq!(get(&mid, "wsbench_connections_open", ""), 4);
    assert_eq!(
        get(&mid, "wsbench_breaker_state", "state=\"closed\""),
        1,
        "the breaker is on by default and closed"
    );

    // The report is written before the linger: the endpoint then serves the final figures.
    while !json.exists() {
        assert!(Instant::now() < deadline, "no report");
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = parse(&scrape(&metrics).expect("scrape during the linger"));
    let report = read_json(&json);
    let mut failed_codes = 0;
    for tool in ["search", "fetch"] {
        let c = &report["per_tool"][tool]["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        let t = format!("tool=\"{tool}\"");
        assert_eq!(
            get(&last, "wsbench_requests_sent_total", &t),
            n("sent"),
            "{tool}"
        );
        for outcome in ["succeeded", "failed", "timed_out", "lost"] {
            let labels = format!("{t},outcome=\"{outcome}\"");
            let (live, final_) = (get(&last, "wsbench_requests_total", &labels), n(outcome));
            assert_eq!(live, final_, "{tool} {outcome}");
            assert!(get(&mid, "wsbench_requests_total", &labels) <= final_);
        }
        assert!(
            get(&mid, "wsbench_requests_sent_total", &t) < n("sent"),
            "live, not final"
        );
        assert_eq!(
            get(&last, "wsbench_latency_seconds_count", &t),
            n("succeeded"),
            "every success in the histogram"
        );
        assert_eq!(
            get(
                &last,
                "wsbench_latency_seconds_bucket",
                &format!("{t},le=\"+Inf\"")
            ),
            n("succeeded")
        );
        let codes = report["per_tool"][tool]["errors_by_code"]
            .as_object()
            .unwrap();
        assert!(!codes.is_empty(), "the server injected errors into {tool}");
        for (code, count) in codes {
            let labels = format!("{t},code=\"{code}\"");
            assert_eq!(
                get(&last, "wsbench_errors_total", &labels),
                count.as_u64().unwrap()
            );
            failed_codes += count.as_u64().unwrap();
        }
    }
    let counts = &report["counts"];
    assert_eq!(failed_codes, counts["failed"].as_u64().unwrap());
    assert_eq!(
        get(&last, "wsbench_requests_in_flight", ""),
        counts["unfinished"].as_u64().unwrap(),
        "what is in flight at the end is unfinished"
    );

    // A signal ends the linger; the run's own outcome stands.
    let out = terminate(run);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        common::out_str(&out.stderr)
    );
    assert!(common::out_str(&out.stderr).contains(&format!("metrics at http://{metrics}/metrics")));

    // The server's endpoint counts the same calls the run sent.
    let server = parse(&scrape(&server_metrics).expect("server scrape"));
    let sent = counts["sent"].as_u64().unwrap();
    assert_eq!(get(&server, "wsbench_server_calls_total", ""), sent);
    assert_eq!(
        get(&server, "wsbench_server_results_total", "outcome=\"error\""),
        counts["failed"].as_u64().unwrap()
    );
    assert_eq!(
        get(&server, "wsbench_server_results_total", "outcome=\"ok\""),
        counts["succeeded"].as_u64().unwrap()
    );
    terminate(serve);
}

/// An OTLP/HTTP receiver on a loopback port: every POST body to /v1/metrics, decoded.
/// The bodies received, with their paths.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

async fn receiver() -> (String, Received) {
    use http_body_util::BodyExt as _;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let got: Received = Received::default();
    let keep = got.clone();
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let got = keep.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |req: hyper::Request<hyper::body::Incoming>| {
                        let got = got.clone();
                        async move {
                            let path = req.uri().path().to_owned();
                            let kind = req
                                .headers()
                                .get("content-type")
                                .map(|v| v.to_str().unwrap().to_owned());
                            assert_eq!(kind.as_deref(), Some("application/x-protobuf"));
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            got.lock().unwrap().push((path, body.to_vec()));
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Full::new(bytes::Bytes::new()),
                            ))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (format!("http://{addr}"), got)
}

use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value};
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use opentelemetry_proto::tonic::metrics::v1::number_data_point;

fn attr(attrs: &[KeyValue], key: &str) -> Option<String> {
    attrs
        .iter()
        .find(|a| a.key == key)
        .and_then(|a| match a.value.as_ref()?.value.as_ref()? {
            any_value::Value::StringValue(s) => Some(s.clone()),
            _ => None,
        })
}

/// What one push holds: resource attributes, and per metric name the data points as
/// (labels "k=v,..." sorted, value or histogram count, histogram bounds).
struct Push {
    resource: Vec<KeyValue>,
    points: BTreeMap<String, Vec<(String, u64, Vec<f64>)>>,
}

fn decode(body: &[u8]) -> Push {
    let req = <ExportMetricsServiceRequest as prost::Message>::decode(body).expect("protobuf");
    assert_eq!(req.resource_metrics.len(), 1);
    let rm = &req.resource_metrics[0];
    let mut points: BTreeMap<String, Vec<(String, u64, Vec<f64>)>> = BTreeMap::new();
    let labels = |attrs: &[KeyValue]| {
        let mut l: Vec<String> = attrs
            .iter()
            .map(|a| format!("{}={}", a.key, attr(attrs, &a.key).unwrap_or_default()))
            .collect();
        l.sort();
        l.join(",")
    };
    for m in rm.scope_metrics.iter().flat_map(|s| &s.metrics) {
        let entry = points.entry(m.name.clone()).or_default();
        match m.data.as_ref().expect("data") {
            Data::Sum(sum) => {
                for p in &sum.data_points {
                    let v = match p.value {
                        Some(number_data_point::Value::AsInt(i)) => i as u64,
                        Some(number_data_point::Value::AsDouble(d)) => d as u64,
                        None => 0,
                    };
                    entry.push((labels(&p.attributes), v, Vec::new()));
                }
            }
            Data::Gauge(g) => {
                for p in &g.data_points {
                    let v = match p.value {
                        Some(number_data_point::Value::AsInt(i)) => i as u64,
                        Some(number_data_point::Value::AsDouble(d)) => d as u64,
                        None => 0,
                    };
                    entry.push((labels(&p.attributes), v, Vec::new()));
                }
            }
            Data::Histogram(h) => {
                for p in &h.data_points {
                    assert_eq!(p.bucket_counts.iter().sum::<u64>(), p.count);
                    entry.push((labels(&p.attributes), p.count, p.explicit_bounds.clone()));
                }
            }
            other => panic!("unexpected data {other:?}"),
        }
    }
    Push {
        resource: rm
            .resource
            .as_ref()
            .map(|r| r.attributes.clone())
            .unwrap_or_default(),
        points,
    }
}

fn value(p: &Push, name: &str, labels: &str) -> u64 {
    p.points
        .get(name)
        .and_then(|v| v.iter().find(|(l, _, _)| l == labels))
        .map_or(0, |(_, v, _)| *v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_otlp_push_carries_live_then_final_figures_with_the_run_as_resource() {
    let (collector, got) = receiver().await;
    let (serve, url) = spawn_serve(
        &[
            "--error-rate",
            "0.02",
            "--tool-delay",
            "search=0ms,fetch=1ms",
            "--otlp-endpoint",
            &collector,
            "--otlp-interval",
            "1s",
        ],
        &[],
    );
    let (_dir, json) = temp_path("r.json");
    let out = tokio::process::Command::new(assert_cmd::cargo::cargo_bin("wsbench"))
        .args(mixed_run(&url, "3s"))
        .args(["--otlp-endpoint", &collector, "--otlp-interval", "1s"])
        .args(["--worker-id", "w7", "--output", "quiet", "--json"])
        .arg(&json)
        .env_remove("WSBENCH_TOKEN")
        .output()
        .await
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        common::out_str(&out.stderr)
    );
    let report = read_json(&json);
    let run_id = report["run_id"].as_str().unwrap().to_owned();

    let pushes: Vec<Push> = got
        .lock()
        .unwrap()
        .iter()
        .inspect(|(path, _)| assert_eq!(path, "/v1/metrics"))
        .map(|(_, body)| decode(body))
        .collect();
    let mine: Vec<&Push> = pushes
        .iter()
        .filter(|p| attr(&p.resource, "wsbench.run_id").as_deref() == Some(&*run_id))
        .collect();
    assert!(
        mine.len() >= 3,
        "a push a second over 3 s, then the last: {}",
        mine.len()
    );
    for p in &mine {
        assert_eq!(
            attr(&p.resource, "service.name").as_deref(),
            Some("wsbench")
        );
        assert_eq!(
            attr(&p.resource, "wsbench.worker_id").as_deref(),
            Some("w7")
        );
    }
    let last = mine.last().unwrap();
    let mut live_seen = false;
    for tool in ["search", "fetch"] {
        let c = &report["per_tool"][tool]["counts"];
        let n = |k: &str| c[k].as_u64().unwrap();
        for outcome in ["succeeded", "failed", "timed_out", "lost"] {
            let labels = format!("outcome={outcome},tool={tool}");
            assert_eq!(
                value(last, "wsbench_requests", &labels),
                n(outcome),
                "{tool} {outcome}"
            );
        }
        assert_eq!(
            value(last, "wsbench_requests_sent", &format!("tool={tool}")),
            n("sent")
        );
        let (_, count, bounds) = last.points["wsbench_latency_seconds"]
            .iter()
            .find(|(l, _, _)| *l == format!("tool={tool}"))
            .expect("a histogram per tool")
            .clone();
        assert_eq!(count, n("succeeded"), "every success in the histogram");
        assert_eq!(bounds.len(), 16);
        assert_eq!((bounds[0], bounds[15]), (0.0001, 10.0));
        let ok = format!("outcome=succeeded,tool={tool}");
        let earlier: Vec<u64> = mine
            .iter()
            .map(|p| value(p, "wsbench_requests", &ok))
            .collect();
        live_seen |= earlier.iter().any(|&v| v > 0 && v < n("succeeded"));
        println!(
            "OTLP decoded, {tool}: {} pushes, succeeded in each {earlier:?}, last {} (report {}), histogram count {count}",
            mine.len(),
            value(last, "wsbench_requests", &ok),
            n("succeeded")
        );
    }
    assert!(live_seen, "an early push held part of the run");

    // The server's last push, at its shutdown, holds its final counters.
    let stats = terminate_with(serve, libc::SIGTERM);
    assert!(stats.status.success());
    let sent = report["counts"]["sent"].as_u64().unwrap();
    let server_last = got
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| decode(b))
        .rfind(|p| attr(&p.resource, "wsbench.run_id").is_none())
        .expect("server pushes");
    assert_eq!(value(&server_last, "wsbench_server_calls", ""), sent);
}

#[test]
fn metrics_settings_that_cannot_work_are_refused_naming_the_flag() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = busy.local_addr().unwrap().to_string();
    for (args, words) in [
        (
            vec!["--metrics-linger", "5s"],
            "--metrics-linger: needs --metrics-listen",
        ),
        (
            vec!["--otlp-interval", "1s"],
            "--otlp-interval: needs --otlp-endpoint",
        ),
        (
            vec!["--otlp-endpoint", "https://127.0.0.1:4318"],
            "https is not supported",
        ),
        (vec!["--metrics-listen", "nowhere"], "--metrics-listen"),
        (
            vec!["--metrics-listen", &busy],
            "--metrics-listen: cannot listen on",
        ),
    ] {
        let out = common::wsbench()
            .args(["run", "--embedded", "-d", "1s", "--progress", "off"])
            .args(&args)
            .output()
            .unwrap();
        let err = common::out_str(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(err.contains(words), "{args:?}: {err}");
        assert!(out.stdout.is_empty(), "no partial output");
    }
}

#[test]
fn a_collector_that_is_down_costs_one_warning_not_the_run() {
    let down = format!("http://127.0.0.1:{}", closed_port());
    let out = common::wsbench()
        .args([
            "run",
            "--embedded",
            "-d",
            "2s",
            "--no-gate",
            "--progress",
            "off",
        ])
        .args([
            "--otlp-endpoint",
            &down,
            "--otlp-interval",
            "500ms",
            "--output",
            "quiet",
        ])
        .output()
        .unwrap();
    let err = common::out_str(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert_eq!(err.matches("--otlp-endpoint: push to").count(), 1, "{err}");
}
