//! Assembles `RunConfig` from `wsbench run` flags, environment, profile and defaults.

use std::time::Duration;

use super::outputs::{OutputFlags, outputs};
use super::source::Resolver;
use super::{ClientTls, RunConfig, Secret, ServeConfig, Setting, Target, WsUrl};
use crate::cli::{RunArgs, ServeArgs};
use crate::error::ConfigError;
use crate::run::breaker::BreakerConfig;
use crate::run::connection::Backoff;
use crate::run::pacer::RateSchedule;
use crate::units;
use crate::values::*;

impl RunConfig {
    /// Validates `run` flags, reading `--config` if given. Reads files but writes nothing.
    pub fn from_args(args: &RunArgs) -> Result<RunConfig, ConfigError> {
        let r = Resolver::new(args.config.as_deref())?;
        resolve(args, &r)
    }
}

/// The effective configuration with the source of every value.
pub fn explain(args: &RunArgs) -> Result<Vec<Setting>, ConfigError> {
    let r = Resolver::new(args.config.as_deref())?;
    resolve(args, &r)?;
    Ok(r.records())
}

/// The token: `--token` or `WSBENCH_TOKEN` (both through clap), then `EXAI_WS_TOKEN`, which
/// existing deployments use. A `.env` file in the working directory feeds both variables.
fn token(args: &RunArgs) -> Secret {
    let t = args
        .token
        .clone()
        .or_else(|| std::env::var("EXAI_WS_TOKEN").ok());
    Secret::new(t.unwrap_or_default())
}

fn resolve(args: &RunArgs, r: &Resolver) -> Result<RunConfig, ConfigError> {
    let run = |k| ("run", k);
    let res = |k| ("resilience", k);

    let embedded = r.switch(args.embedded, "--embedded", run("embedded"))?;
    let command = r.get(
        args.command.as_ref(),
        "--command",
        run("command"),
        tool_name,
    )?;
    // The positional target is --url by another spelling (clap refuses both at once).
    let url_flag = args.url.as_ref().or(args.target.as_ref());
    let url = r.get_or(
        url_flag,
        "--url",
        run("url"),
        "ws://127.0.0.1:8079",
        WsUrl::parse,
    )?;
    // `--url stdio:<command>` is `--command <command>`.
    let command = match (command, url.command.clone()) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Rejected {
                name: "--url".into(),
                reason: "a stdio: URL and --command both name the server to spawn".into(),
            });
        }
        (c, u) => c.or(u),
    };
    let dialect = super::dialect::resolve(args, r, &url, command.is_some())?;
    let protocol = dialect.protocol;
    // A --url flag beats `embedded = true` in a file; the --embedded flag beats a file's url.
    let target = if let Some(c) = command {
        Target::Command(c)
    } else if embedded && (url_flag.is_none() || args.embedded) {
        Target::Embedded
    } else {
        Target::Url(url)
    };
    let stderr_log = matches!(target, Target::Command(_))
        .then(|| std::env::temp_dir().join(format!("wsbench-stdio-{}.log", std::process::id())));

    let requests = r.get(
        args.requests.as_ref(),
        "--requests",
        run("requests"),
        positive_whole,
    )?;
    let stages = r.get(
        args.stages.as_ref(),
        "--stages",
        run("stages"),
        RateSchedule::parse_stages,
    )?;
    let rate = r.get(args.rate.as_ref(), "--rate", run("rate"), positive_rate)?;
    // With -n the duration is only a cap; stages set their own length.
    let default_duration = if requests.is_some() { "10m" } else { "30s" };
    let duration = match &stages {
        Some(s) => s.duration(),
        None => r.get_or(
            args.duration.as_ref(),
            "--duration",
            run("duration"),
            default_duration,
            positive_duration,
        )?,
    };
    let schedule = match (stages, rate) {
        (Some(_), Some(_)) => {
            return Err(ConfigError::Rejected {
                name: "--rate".into(),
                reason: "cannot be combined with --stages".into(),
            });
        }
        (Some(s), None) => Some(s),
        (None, Some(rate)) => Some(RateSchedule::constant(rate, duration)),
        (None, None) => None,
    };
    let conns = r.get_or(
        args.conns.as_ref(),
        "--conns",
        run("conns"),
        "64",
        positive_u32,
    )?;
    // Open loop keeps a deep window so a slow reply never stops the schedule.
    let default_inflight = if schedule.is_some() { "1024" } else { "1" };
    let inflight = r.get_or(
        args.inflight.as_ref(),
        "--inflight",
        run("inflight"),
        default_inflight,
        positive_u32,
    )?;
    let ramp_up = r.get(
        args.ramp_up.as_ref(),
        "--ramp-up",
        run("ramp_up"),
        units::parse_duration,
    )?;
    let connect_rate = r.get(
        args.connect_rate.as_ref(),
        "--connect-rate",
        run("connect_rate"),
        positive_rate,
    )?;
    let connect_spacing = match (ramp_up, connect_rate) {
        (Some(d), _) => d / conns,
        (None, Some(rate)) => Duration::from_secs_f64(1.0 / rate),
        (None, None) => Duration::ZERO,
    };

    let headers = if args.header.is_empty() {
        None
    } else {
        Some(args.header.join(","))
    };
    let tls = ClientTls {
        ca_file: r.get(
            args.ca_file.as_ref(),
            "--ca-file",
            run("ca_file"),
            existing_file,
        )?,
        insecure: r.switch(args.insecure, "--insecure", run("insecure"))?,
    };

    let (outputs, stdout) = outputs(
        OutputFlags {
            json: args.json.as_ref(),
            junit: args.junit.as_ref(),
            html: args.html.as_ref(),
            markdown: args.markdown.as_ref(),
            plot: args.plot.as_ref(),
            hdr_log: args.hdr_log.as_ref(),
            output: args.output.as_ref(),
        },
        r,
    )?;

    let (count_timeouts, count_errors) = r.get_or(
        args.breaker_count.as_ref(),
        "--breaker-count",
        res("breaker_count"),
        "connect",
        breaker_count,
    )?;
    let breaker = BreakerConfig {
        enabled: r.get_or(
            args.breaker.as_ref(),
            "--breaker",
            res("breaker"),
            "on",
            on_off,
        )?,
        failure_threshold: r.get_or(
            args.breaker_failures.as_ref(),
            "--breaker-failures",
            res("breaker_failures"),
            "5",
            positive_u32,
        )?,
        success_threshold: r.get_or(
            args.breaker_successes.as_ref(),
            "--breaker-successes",
            res("breaker_successes"),
            "2",
            positive_u32,
        )?,
        open_timeout: r.get_or(
            args.breaker_open_timeout.as_ref(),
            "--breaker-open-timeout",
            res("breaker_open_timeout"),
            "5s",
            positive_duration,
        )?,
        half_open_max_calls: r.get_or(
            args.breaker_half_open_calls.as_ref(),
            "--breaker-half-open-calls",
            res("breaker_half_open_calls"),
            "3",
            positive_u32,
        )?,
        count_timeouts,
        count_errors,
    };
    let reconnect = r.get_or(
        args.reconnect.as_ref(),
        "--reconnect",
        res("reconnect"),
        "on",
        on_off,
    )?;
    let backoff = Backoff {
        base: r.get_or(
            args.backoff_base.as_ref(),
            "--backoff-base",
            res("backoff_base"),
            "100ms",
            positive_duration,
        )?,
        max: r.get_or(
            args.backoff_max.as_ref(),
            "--backoff-max",
            res("backoff_max"),
            "5s",
            positive_duration,
        )?,
    };
    let ping_interval = r.get(
        args.ping_interval.as_ref(),
        "--ping-interval",
        res("ping_interval"),
        positive_duration,
    )?;
    let pong_timeout = r.get_or(
        args.pong_timeout.as_ref(),
        "--pong-timeout",
        res("pong_timeout"),
        "5s",
        positive_duration,
    )?;
    let honor_retry_after = r.get_or(
        args.retry_after.as_ref(),
        "--retry-after",
        res("retry_after"),
        "ignore",
        honor_ignore,
    )?;
    let retry_after_max = r.get_or(
        args.retry_after_max.as_ref(),
        "--retry-after-max",
        res("retry_after_max"),
        "30s",
        positive_duration,
    )?;
    let retry_after = honor_retry_after.then_some(retry_after_max);
    let uncorrelated = r.get_or(
        args.uncorrelated_errors.as_ref(),
        "--uncorrelated-errors",
        res("uncorrelated_errors"),
        "single",
        crate::protocol::Uncorrelated::parse,
    )?;

    let token = token(args);
    let embedded_server = ServeConfig {
        token: token.clone(),
        // The embedded server speaks what the run speaks.
        protocol,
        ..super::serve::resolve(&ServeArgs::default(), r)?
    };

    if ping_interval.is_some() && matches!(target, Target::Command(_)) {
        return Err(ConfigError::Rejected {
            name: "--ping-interval".into(),
            reason: "a server on pipes (--command) has no WebSocket pings to answer".into(),
        });
    }
    let asked_rps = schedule
        .as_ref()
        .map(|s| s.count_at(s.duration()) / s.duration().as_secs_f64().max(1e-9));
    let judge = super::gate::resolve(&args.gate, r, asked_rps)?;
    let tool_name_for_check = args
        .tool
        .as_ref()
        .map_or_else(|| "echo".to_owned(), |t| t.value.clone());
    let schema = r.get(
        args.expect_output.as_deref(),
        "--expect-output",
        run("expect_output"),
        |s| {
            let text = std::fs::read_to_string(s).map_err(|e| format!("cannot read '{s}': {e}"))?;
            let schema: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("not JSON: {e}"))?;
            jsonschema::validator_for(&schema)
                .map_err(|e| format!("not a usable JSON Schema: {e}"))?;
            Ok(schema)
        },
    )?;
    let validation = match r.get(
        args.validate_sample.as_ref(),
        "--validate-sample",
        run("validate_sample"),
        positive_ratio,
    )? {
        Some(sample) => {
            if schema.is_none() && tool_name_for_check != "echo" {
                return Err(ConfigError::Rejected {
                    name: "--validate-sample".into(),
                    reason: format!(
                        "tool '{tool_name_for_check}' has no built-in check; give --expect-output SCHEMA.json"
                    ),
                });
            }
            Some(super::Validation { sample, schema })
        }
        None => None,
    };

    let seed = super::workload::seed(args, r)?;
    let mix = super::workload::resolve(args, r, seed)?;
    if mix.is_steps() && schedule.is_none() && inflight > 1 {
        return Err(ConfigError::Rejected {
            name: "--inflight".into(),
            reason: "a session takes its steps one at a time (a step may use the previous answer): --inflight 1".into(),
        });
    }
    super::workload::check_thresholds(&mix, &judge.thresholds)?;
    let data = super::workload::data(args, r, &mix, seed)?;
    let checks = super::workload::checks(args, r, &mix)?;
    Ok(RunConfig {
        target,
        protocol,
        stderr_log,
        progress_token: dialect.progress_token,
        http2: dialect.http2,
        conns,
        duration,
        requests,
        inflight,
        tool: mix.describe(),
        args: match mix.calls() {
            [one] => one.args.clone(),
            _ => None,
        },
        mix,
        data,
        isolation: checks.isolation,
        consistent: checks.consistent,
        token,
        session_prefix: r.get_or(
            args.session_prefix.as_ref(),
            "--session-prefix",
            run("session_prefix"),
            "bench",
            session_prefix,
        )?,
        connect_timeout: r.get_or(
            args.connect_timeout.as_ref(),
            "--connect-timeout",
            run("connect_timeout"),
            "5s",
            positive_duration,
        )?,
        timeout: r.get_or(
            args.timeout.as_ref(),
            "--timeout",
            run("timeout"),
            "10s",
            positive_duration,
        )?,
        drain: r.get_or(
            args.drain.as_ref(),
            "--drain",
            run("drain"),
            "2s",
            units::parse_duration,
        )?,
        close_rate: r.get(
            args.close_rate.as_ref(),
            "--close-rate",
            run("close_rate"),
            positive_rate,
        )?,
        headers: r
            .get(
                headers.as_deref(),
                "--header",
                run("headers"),
                self::headers,
            )?
            .unwrap_or_default(),
        subprotocol: r.get(
            args.subprotocol.as_ref(),
            "--subprotocol",
            run("subprotocol"),
            tool_name,
        )?,
        bind_ips: r
            .get(args.bind_ip.as_ref(), "--bind-ip", run("bind_ip"), ip_list)?
            .unwrap_or_default(),
        max_frame_size: r.get_or(
            args.max_frame_size.as_ref(),
            "--max-frame-size",
            run("max_frame_size"),
            "16MiB",
            frame_size,
        )?,
        worker_id: r.get_or(
            args.worker_id.as_ref(),
            "--worker-id",
            run("worker_id"),
            &default_worker_id(),
            worker_id,
        )?,
        start_at: r.get(
            args.start_at.as_ref(),
            "--start-at",
            run("start_at"),
            start_at,
        )?,
        tls,
        schedule,
        warmup: r.get_or(
            args.warmup.as_ref(),
            "--warmup",
            run("warmup"),
            "0s",
            units::parse_duration,
        )?,
        connect_spacing,
        progress: r.get_or(
            args.progress.as_ref(),
            "--progress",
            run("progress"),
            "auto",
            progress_mode,
        )?,
        stdout,
        outputs,
        telemetry: super::telemetry::telemetry(&args.metrics, r, "run")?,
        breaker,
        reconnect: reconnect.then_some(backoff),
        ping: ping_interval.map(|i| (i, pong_timeout)),
        retry_after,
        uncorrelated,
        embedded_server,
        thresholds: judge.thresholds,
        baseline: judge.baseline,
        validation,
        gate: judge.gate,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;
    use crate::gate::Metric;

    fn args(f: impl FnOnce(&mut RunArgs)) -> RunArgs {
        let mut a = RunArgs::default();
        f(&mut a);
        a
    }

    #[test]
    fn defaults_are_the_documented_targets() {
        let c = RunConfig::from_args(&RunArgs::default()).unwrap();
        assert_eq!(c.conns, 64);
        assert_eq!(c.duration, Duration::from_secs(30));
        assert_eq!(c.inflight, 1);
        let names: Vec<_> = c
            .thresholds
            .iter()
            .map(|t| (t.metric.name(), t.limit))
            .collect();
        assert_eq!(
            names,
            [
                ("rps", 50_000.0),
                ("p99", 5.0),
                ("connect_p99", 10.0),
                ("error_rate", 0.0),
                ("connection_errors", 0.0)
            ]
        );
    }

    /// `wsbench run` with these flags, as clap parses them.
    fn parsed(flags: &[&str]) -> Result<RunArgs, clap::Error> {
        use clap::Parser as _;
        let cli = crate::cli::Cli::try_parse_from(["wsbench", "run"].iter().chain(flags))?;
        match cli.command {
            crate::cli::Command::Run(a) => Ok(*a),
            _ => unreachable!("parsed a run"),
        }
    }

    #[test]
    fn bad_values_name_their_flag_at_parse_time() {
        // Typed flags: clap runs the same parsers config uses for env and files, so a bad
        // value never reaches config.
        for (flags, flag) in [
            (&["--conns", "0"][..], "--conns"),
            (&["--duration", "0s"], "--duration"),
            (&["--url", "ftp://x"], "--url"),
            (&["--args", "{bad"], "--args"),
            (&["--max-p99", "soon"], "--max-p99"),
            (&["--max-error-rate", "2"], "--max-error-rate"),
            (&["--progress", "loud"], "--progress"),
            (&["--retry-after", "maybe"], "--retry-after"),
        ] {
            let err = parsed(flags).unwrap_err().to_string();
            assert!(err.contains(flag), "{flags:?}: {err}");
        }
        let a = parsed(&["--conns", "8", "--duration", "2s", "--rate", "20k"]).unwrap();
        assert_eq!(a.conns.as_ref().map(|g| g.value), Some(8));
        assert_eq!(a.rate.as_ref().map(|g| g.value), Some(20_000.0));
        let c = RunConfig::from_args(&a).unwrap();
        assert_eq!((c.conns, c.duration), (8, Duration::from_secs(2)));
    }

    #[test]
    fn env_values_go_through_the_same_parsers() {
        // Not a flag, so config parses it, and names the variable.
        let err = crate::values::Given::typed("0", positive_u32).unwrap_err();
        assert_eq!(err, "must be at least 1");
        let r = Resolver::new(None).unwrap();
        let got = r.get_or::<_, str>(
            Some("many"),
            "--inflight",
            ("run", "inflight"),
            "1",
            positive_u32,
        );
        assert!(got.unwrap_err().to_string().contains("--inflight"));
    }

    #[test]
    fn file_values_apply_below_flags_and_unknown_keys_fail() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.toml");
        std::fs::write(
            &path,
            "[run]\nconns = 8\ninflight = \"4\"\n[thresholds]\nmax_p99 = \"7ms\"\n",
        )
        .unwrap();
        let c = RunConfig::from_args(&args(|a| {
            a.config = Some(path.clone());
            a.inflight = Some(Given::typed("2", positive_u32).unwrap());
        }))
        .unwrap();
        assert_eq!((c.conns, c.inflight), (8, 2));
        assert!(
            c.thresholds
                .iter()
                .any(|t| t.metric == Metric::P99 && t.limit == 7.0)
        );

        std::fs::write(&path, "[run]\nconnz = 8\n").unwrap();
        let err = RunConfig::from_args(&args(|a| a.config = Some(path.clone()))).unwrap_err();
        assert!(err.to_string().contains("run.connz"), "{err}");
    }

    #[test]
    fn secrets_do_not_debug_print() {
        assert_eq!(format!("{:?}", Secret::new("hunter2")), "\"<redacted>\"");
    }
}
