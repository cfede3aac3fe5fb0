//! `--junit`: JUnit XML for CI test tabs, one test case per threshold; a failure element says
//! measured vs limit. Built with quick-junit (the crate nextest uses).

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};

use super::Reporter;
use crate::outcome::Outcome;
use crate::result::RunResult;

pub struct JunitReporter;

impl Reporter for JunitReporter {
    fn render(&self, r: &RunResult) -> anyhow::Result<Vec<u8>> {
        let s = &r.summary;
        let mut suite = TestSuite::new(format!("wsbench {}", s.target));
        suite.set_time(s.duration);
        suite.add_properties([
            Property::new("run_id", r.run_id.as_str()),
            Property::new("verdict", r.outcome.verdict()),
            Property::new("exit_code", r.outcome.code().to_string()),
            Property::new("throughput_rps", format!("{:.1}", s.throughput())),
            Property::new("sent", s.counts.sent.to_string()),
            Property::new("succeeded", s.counts.succeeded.to_string()),
            Property::new("replayed", s.counts.replayed.to_string()),
        ]);
        if r.outcome == Outcome::CouldNotRun {
            // Nothing was measured, so no threshold was judged: one error says why.
            let mut st = TestCaseStatus::non_success(NonSuccessKind::Error);
            let why = r.reason.as_deref().unwrap_or("could not run");
            st.set_message(format!("could not run: {why}"))
                .set_type("could_not_run");
            let mut case = TestCase::new("run", st);
            case.set_classname("wsbench.run");
            suite.add_test_case(case);
        } else {
            for v in &r.verdicts {
                let status = if v.passed {
                    TestCaseStatus::success()
                } else if let Some(why) = &v.inconclusive {
                    // Proved nothing either way: skipped, with the reason, never a pass.
                    let mut st = TestCaseStatus::skipped();
                    st.set_message(format!("inconclusive: {why} ({})", v.condition))
                        .set_type("inconclusive");
                    st
                } else {
                    let mut st = TestCaseStatus::non_success(NonSuccessKind::Failure);
                    st.set_message(format!(
                        "{} failed: measured {}",
                        v.condition, v.measured_text
                    ))
                    .set_type("threshold");
                    if let Some(reason) = &r.reason {
                        st.set_description(reason.as_str());
                    }
                    st
                };
                let mut case = TestCase::new(v.condition.as_str(), status);
                case.set_classname(format!("wsbench.thresholds.{}", v.metric));
                suite.add_test_case(case);
            }
            // A mix: each tool's figures as a case of its own (judged only by the thresholds
            // above, `p99{tool=...}` among them: the gate decides, not the report).
            if s.per_tool.len() > 1 {
                for (name, t) in &s.per_tool {
                    let c = &t.counts;
                    let mut case = TestCase::new(name.as_str(), TestCaseStatus::success());
                    case.set_classname("wsbench.tools");
                    let p99 = if t.histograms.latency.is_empty() {
                        "n/a".to_owned()
                    } else {
                        format!(
                            "{:.3}",
                            crate::stats::summary::percentile_ms(&t.histograms.latency, 99.0)
                        )
                    };
                    case.add_properties([
                        Property::new("sent", c.sent.to_string()),
                        Property::new("succeeded", c.succeeded.to_string()),
                        Property::new("failed", c.failed.to_string()),
                        Property::new("timed_out", c.timed_out.to_string()),
                        Property::new("p99_ms", p99),
                    ]);
                    suite.add_test_case(case);
                }
            }
        }
        let mut report = Report::new("wsbench");
        report.add_test_suite(suite);
        let mut out = Vec::new();
        report.serialize(&mut out)?;
        Ok(out)
    }
}
