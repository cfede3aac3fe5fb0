//! `--otlp-endpoint`: the families pushed over OTLP/HTTP (protobuf) by the standard
//! `opentelemetry-otlp` exporter on the SDK's periodic reader, every `--otlp-interval`, with
//! the identity as resource attributes. Counters and gauges are observed from the latest
//! reading; response times are a real OTel histogram (the fixed buckets), fed each second with
//! the values recorded since the last reading. The last push carries the final figures.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hdrhistogram::Histogram as Hdr;
use opentelemetry::KeyValue;
use opentelemetry::metrics::{BoundHistogram, Histogram, Meter, MeterProvider as _};
use opentelemetry_http::{Bytes, HttpClient, HttpError, Request, Response};
use opentelemetry_otlp::{WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

use super::{BUCKETS_S, Family, Identity, Kind, Otlp, Source, Value};

/// How often readings are taken (and response times fed) between pushes.
const READING: Duration = Duration::from_millis(250);
/// One push's bound, and the last one's at the end.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// A family's name and one series' labels.
type Series = (&'static str, Vec<(&'static str, String)>);

/// The latest reading, which the observable instruments report.
type Latest = Arc<Mutex<Vec<Family>>>;

pub(super) struct Pusher {
    provider: SdkMeterProvider,
    reader: tokio::task::JoinHandle<Feeder>,
    stop: tokio_util::sync::CancellationToken,
}

/// Takes readings: stores the latest, registers an instrument for each family first seen,
/// and records the new response times into the histograms.
struct Feeder {
    meter: Meter,
    source: Source,
    latest: Latest,
    seen: HashMap<&'static str, Option<Histogram<f64>>>,
    /// The response times already fed, by family and labels, with the histogram bound to
    /// those labels.
    fed: HashMap<Series, (Hdr<u64>, BoundHistogram<f64>)>,
}

/// The URL metrics go to: a bare collector address gets the OTLP/HTTP metrics path.
pub fn metrics_url(endpoint: &str) -> String {
    match endpoint.parse::<hyper::Uri>() {
        Ok(uri) if uri.path() == "/" || uri.path().is_empty() => {
            format!("{}/v1/metrics", endpoint.trim_end_matches('/'))
        }
        _ => endpoint.to_owned(),
    }
}

impl Pusher {
    pub(super) fn start(
        otlp: &Otlp,
        identity: &Identity,
        source: Source,
    ) -> anyhow::Result<Pusher> {
        let client = OnRuntime {
            handle: tokio::runtime::Handle::current(),
            client: opentelemetry_http::hyper::HyperClient::with_default_connector(
                EXPORT_TIMEOUT,
                None,
            ),
            warned: Arc::default(),
        };
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_http()
            .with_http_client(client)
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(metrics_url(&otlp.endpoint))
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .map_err(|e| crate::error::ConfigError::Rejected {
                name: "--otlp-endpoint".into(),
                reason: e.to_string(),
            })?;
        let reader = PeriodicReader::builder(exporter)
            .with_interval(otlp.interval)
            .build();
        let attributes = identity
            .labels
            .iter()
            .map(|(_, attribute, v)| KeyValue::new(*attribute, v.clone()));
        let resource = Resource::builder_empty()
            .with_service_name("wsbench")
            .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
            .with_attributes(attributes)
            .build();
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_reader(reader)
            .build();
        let mut feeder = Feeder {
            meter: provider.meter("wsbench"),
            source,
            latest: Latest::default(),
            seen: HashMap::new(),
            fed: HashMap::new(),
        };
        // The instruments exist before the first push, so it carries every family.
        feeder.read();
        let stop = tokio_util::sync::CancellationToken::new();
        let reader = tokio::spawn({
            let stop = stop.clone();
            async move {
                let mut tick = tokio::time::interval(READING);
                loop {
                    tokio::select! {
                        _ = tick.tick() => feeder.read(),
                        _ = stop.cancelled() => return feeder,
                    }
                }
            }
        });
        Ok(Pusher {
            provider,
            reader,
            stop,
        })
    }

    /// A last reading (the final figures once the run's books are closed), then the provider's
    /// shutdown, which pushes it; bounded by the export timeout.
    pub(super) async fn finish(self) {
        self.stop.cancel();
        if let Ok(mut feeder) = self.reader.await {
            feeder.read();
        }
        let provider = self.provider;
        let shutdown = tokio::task::spawn_blocking(move || provider.shutdown());
        match tokio::time::timeout(EXPORT_TIMEOUT * 2, shutdown).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => tracing::warn!("--otlp-endpoint: the last push failed: {e}"),
            _ => tracing::warn!("--otlp-endpoint: the last push did not finish in time"),
        }
    }
}

impl Feeder {
    fn read(&mut self) {
        let families = (self.source)();
        for f in &families {
            if !self.seen.contains_key(f.name) {
                let histogram = self.register(f);
                self.seen.insert(f.name, histogram);
            }
            let Some(Some(histogram)) = self.seen.get(f.name) else {
                continue;
            };
            for p in &f.points {
                let Value::Micros(now) = &p.value else {
                    continue;
                };
                let (fed, bound) =
                    self.fed
                        .entry((f.name, p.labels.clone()))
                        .or_insert_with(|| {
                            let bound = histogram.bind(&attributes(&p.labels));
                            (crate::stats::recorder::new_histogram(), bound)
                        });
                let mut new = now.clone();
                if new.subtract(&*fed).is_err() {
                    continue;
                }
                // Each value as recorded (to 3 significant figures): the OTel histogram's
                // buckets, sum, min and max come out as the run's.
                for v in new.iter_recorded() {
                    let s = new.median_equivalent(v.value_iterated_to()) as f64 / 1e6;
                    for _ in 0..v.count_since_last_iteration() {
                        bound.record(s);
                    }
                }
                *fed = now.clone();
            }
        }
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = families;
    }

    /// The instrument for a family: observable counters and gauges read the latest reading;
    /// a histogram is fed by `read`.
    fn register(&self, f: &Family) -> Option<Histogram<f64>> {
        let (name, unit) = (f.name, f.unit.map(otel_unit).unwrap_or(""));
        let latest = self.latest.clone();
        let observe = move || -> Vec<(f64, u64, Vec<KeyValue>)> {
            let latest = latest.lock().unwrap_or_else(|e| e.into_inner());
            let Some(f) = latest.iter().find(|f| f.name == name) else {
                return Vec::new();
            };
            f.points
                .iter()
                .filter_map(|p| match &p.value {
                    Value::Count(n) => Some((*n as f64, *n, attributes(&p.labels))),
                    Value::Number(x) => Some((*x, 0, attributes(&p.labels))),
                    Value::Micros(_) => None,
                })
                .collect()
        };
        match f.kind {
            Kind::Counter => {
                self.meter
                    .u64_observable_counter(name)
                    .with_description(f.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        for (_, n, attrs) in observe() {
                            o.observe(n, &attrs);
                        }
                    })
                    .build();
                None
            }
            Kind::Gauge => {
                self.meter
                    .f64_observable_gauge(name)
                    .with_description(f.help)
                    .with_unit(unit)
                    .with_callback(move |o| {
                        for (x, _, attrs) in observe() {
                            if x.is_finite() {
                                o.observe(x, &attrs);
                            }
                        }
                    })
                    .build();
                None
            }
            Kind::Histogram => Some(
                self.meter
                    .f64_histogram(name)
                    .with_description(f.help)
                    .with_unit(unit)
                    .with_boundaries(BUCKETS_S.to_vec())
                    .build(),
            ),
        }
    }
}

fn attributes(labels: &[(&'static str, String)]) -> Vec<KeyValue> {
    labels
        .iter()
        .map(|(k, v)| KeyValue::new(*k, v.clone()))
        .collect()
}

/// UCUM, as OTLP wants units.
fn otel_unit(unit: &'static str) -> &'static str {
    match unit {
        "seconds" => "s",
        other => other,
    }
}

/// The exporter's HTTP client, run on the command's tokio runtime: the SDK's periodic reader
/// exports from a thread of its own, where hyper's client (which spawns its connection tasks)
/// has no runtime. A failing collector is said once, not per push.
#[derive(Debug)]
struct OnRuntime {
    handle: tokio::runtime::Handle,
    client: opentelemetry_http::hyper::HyperClient,
    warned: Arc<AtomicBool>,
}

#[async_trait::async_trait]
impl HttpClient for OnRuntime {
    async fn send_bytes(&self, request: Request<Bytes>) -> Result<Response<Bytes>, HttpError> {
        let client = self.client.clone();
        let uri = request.uri().to_string();
        let sent = self
            .handle
            .spawn(async move { client.send_bytes(request).await })
            .await?;
        let failure = match &sent {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("HTTP {}", r.status())),
            Err(e) => Some(e.to_string()),
        };
        if let Some(why) = failure
            && !self.warned.swap(true, Ordering::Relaxed)
        {
            tracing::warn!("--otlp-endpoint: push to {uri} failed: {why} (said once)");
        }
        sent
    }
}

#[cfg(test)]
mod tests {
    use super::metrics_url;

    #[test]
    fn a_bare_collector_address_gets_the_metrics_path() {
        assert_eq!(
            metrics_url("http://127.0.0.1:4318"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(
            metrics_url("http://127.0.0.1:4318/"),
            "http://127.0.0.1:4318/v1/metrics"
        );
        assert_eq!(metrics_url("http://c:4318/custom"), "http://c:4318/custom");
    }
}
