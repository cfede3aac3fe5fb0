//! Live metrics while a run or the reference server goes on: a metric model (`Family`) that
//! the commands fill from their own counters, served as OpenMetrics text (`--metrics-listen`,
//! `endpoint.rs`, `text.rs`) and pushed over OTLP/HTTP (`--otlp-endpoint`, `otlp.rs`). What the
//! families hold for a run (`client.rs`) and for `serve` (`server.rs`) is mapped here from the
//! recorders' live view and the server's snapshot; nothing here measures anything.

pub mod client;
mod endpoint;
mod otlp;
pub mod server;
pub mod text;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio_util::sync::CancellationToken;

/// Where live metrics go, as the flags say.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Telemetry {
    /// `--metrics-listen`: serve OpenMetrics text on this address.
    pub listen: Option<SocketAddr>,
    /// `--metrics-linger`: keep serving the final figures this long after the report, so a
    /// scrape interval that ends after the run still reads them.
    pub linger: Duration,
    /// `--otlp-endpoint` and `--otlp-interval`.
    pub otlp: Option<Otlp>,
}

/// OTLP/HTTP push settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Otlp {
    /// The collector's metrics URL (`/v1/metrics` added to a bare host).
    pub endpoint: String,
    pub interval: Duration,
}

impl Telemetry {
    pub fn is_on(&self) -> bool {
        self.listen.is_some() || self.otlp.is_some()
    }
}

/// Which metric type a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    /// Response times: [`BUCKETS_S`] in the text form, every recorded value over OTLP.
    Histogram,
}

/// One value of a family.
#[derive(Debug, Clone)]
pub enum Value {
    Count(u64),
    Number(f64),
    /// Microseconds, as the recorder holds them.
    Micros(Histogram<u64>),
}

/// One labelled series of a family.
#[derive(Debug, Clone)]
pub struct Point {
    pub labels: Vec<(&'static str, String)>,
    pub value: Value,
}

/// One metric: its name (without `_total`; the unit is its last word when it has one), help,
/// type and series.
#[derive(Debug, Clone)]
pub struct Family {
    pub name: &'static str,
    pub help: &'static str,
    pub unit: Option<&'static str>,
    pub kind: Kind,
    pub points: Vec<Point>,
}

impl Family {
    pub fn new(name: &'static str, kind: Kind, help: &'static str) -> Family {
        Family {
            name,
            help,
            unit: None,
            kind,
            points: Vec::new(),
        }
    }

    pub fn unit(mut self, unit: &'static str) -> Family {
        self.unit = Some(unit);
        self
    }

    pub fn point(&mut self, labels: Vec<(&'static str, String)>, value: Value) {
        self.points.push(Point { labels, value });
    }
}

/// The fixed histogram buckets, in seconds: 100 us to 10 s, 1-2.5-5 steps, the same in the
/// text form and over OTLP so the two agree.
pub const BUCKETS_S: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

/// What the metrics are read from: called for each scrape and push.
pub type Source = Arc<dyn Fn() -> Vec<Family> + Send + Sync>;

/// Who is reporting: labels on every text series, resource attributes over OTLP.
#[derive(Debug, Clone, Default)]
pub struct Identity {
    /// (Prometheus label, OTLP resource attribute, value), e.g. the run id and worker id.
    pub labels: Vec<(&'static str, &'static str, String)>,
}

/// The endpoint and pusher of one command, until `finish`.
pub struct Running {
    endpoint: Option<endpoint::Endpoint>,
    pusher: Option<otlp::Pusher>,
    linger: Duration,
}

/// Starts what `telemetry` asks for. A metrics address that cannot be bound is a usage error
/// naming the flag.
pub async fn start(
    telemetry: &Telemetry,
    identity: Identity,
    source: Source,
) -> anyhow::Result<Running> {
    let endpoint = match telemetry.listen {
        Some(addr) => Some(endpoint::Endpoint::start(addr, &identity, source.clone()).await?),
        None => None,
    };
    let pusher = match &telemetry.otlp {
        Some(otlp) => Some(otlp::Pusher::start(otlp, &identity, source)?),
        None => None,
    };
    Ok(Running {
        endpoint,
        pusher,
        linger: telemetry.linger,
    })
}

impl Running {
    /// The address the endpoint serves on (its port when `:0` was asked).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.endpoint.as_ref().map(|e| e.addr)
    }

    /// Ends it: the last push (the final figures; bounded by the exporter's timeout), then the
    /// endpoint serves on for the linger unless `interrupt` fires.
    pub async fn finish(self, interrupt: &CancellationToken) {
        if let Some(pusher) = self.pusher {
            pusher.finish().await;
        }
        if self.endpoint.is_some() && !self.linger.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(self.linger) => {}
                _ = interrupt.cancelled() => {}
            }
        }
        drop(self.endpoint);
    }
}
