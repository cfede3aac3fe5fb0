//! Which tool each request calls: one tool, or a weighted mix (`--mix search=70,fetch=20`,
//! `[[scenario.call]]`). The choice is a pure function of the request's place in the run, so
//! it is the same in every run with the same seed, and exact over a run: request `seq` of
//! connection `conn` is request `k = seq * conns + conn` of the run (the connections
//! interleaved), and `k` picks the call whose share of [0, 1) holds `frac(k / phi + offset)`.
//! That sequence is the most evenly spread there is (its discrepancy grows like log k), so
//! over N requests each call gets its weight's share to within a few requests: no random
//! drift, and no per-connection cycle to fall out of step with the others.

/// One kind of call in the mix.
#[derive(Debug, Clone, PartialEq)]
pub struct MixCall {
    pub tool: String,
    /// The arguments template (`None`: the default, with its placeholders).
    pub args: Option<String>,
    pub weight: u32,
    /// Its own `--timeout` (`[[scenario.call]] timeout`), if it has one.
    pub timeout: Option<std::time::Duration>,
    /// A step's pause after its answer before the next step (closed loop).
    pub think: Option<std::time::Duration>,
}

/// The calls a run makes, and how often each.
#[derive(Debug, Clone, PartialEq)]
pub struct Mix {
    calls: Vec<MixCall>,
    /// The upper end of each call's share of [0, 1).
    ends: Vec<f64>,
    /// Where in the sequence a run starts (from `--seed`).
    offset: f64,
    /// `[[scenario.step]]`: each connection makes the calls in order, over and over.
    sequential: bool,
}

/// Most calls a mix (or steps) may have: a request's call is a `u8`.
pub const MAX_CALLS: usize = 255;
/// Calls the per-tool figures tell apart; the ones after these are added up as `other`, so
/// per-connection tallies stay bounded.
pub const MAX_TOOLS: usize = 64;

/// 1 / golden ratio: the step of the sequence.
const STEP: f64 = 0.618_033_988_749_894_9;

impl Mix {
    /// One tool, every request.
    pub fn single(tool: &str, args: Option<&str>) -> Mix {
        Mix::new(
            vec![MixCall {
                tool: tool.to_owned(),
                args: args.map(str::to_owned),
                weight: 1,
                timeout: None,
                think: None,
            }],
            0,
        )
        .expect("one call with weight 1 is a mix")
    }

    /// A weighted mix; `seed` moves where the sequence starts.
    pub fn new(calls: Vec<MixCall>, seed: u64) -> Result<Mix, String> {
        if calls.is_empty() {
            return Err("a mix needs at least one call".into());
        }
        if calls.len() > MAX_CALLS {
            return Err(format!("at most {MAX_CALLS} calls in a mix"));
        }
        if let Some(c) = calls.iter().find(|c| c.weight == 0) {
            return Err(format!("'{}' has weight 0", c.tool));
        }
        for (i, c) in calls.iter().enumerate() {
            if calls[..i].iter().any(|o| o.tool == c.tool) {
                return Err(format!("'{}' is in the mix twice", c.tool));
            }
        }
        let total: u64 = calls.iter().map(|c| u64::from(c.weight)).sum();
        let mut sum = 0u64;
        let ends = calls
            .iter()
            .map(|c| {
                sum += u64::from(c.weight);
                sum as f64 / total as f64
            })
            .collect();
        // A seed's own spread of [0, 1).
        let offset = (seed as f64 * STEP).fract();
        Ok(Mix {
            calls,
            ends,
            offset,
            sequential: false,
        })
    }

    /// Steps (`[[scenario.step]]`): each connection's request `seq` makes step `seq mod
    /// steps`, so a session goes through them in order; a tool may come back in a later step.
    pub fn steps(calls: Vec<MixCall>) -> Result<Mix, String> {
        if calls.is_empty() || calls.len() > MAX_CALLS {
            return Err(format!("1 to {MAX_CALLS} steps"));
        }
        Ok(Mix {
            ends: vec![1.0; calls.len()],
            calls,
            offset: 0.0,
            sequential: true,
        })
    }

    /// Whether the calls are steps taken in order.
    pub fn is_steps(&self) -> bool {
        self.sequential
    }

    pub fn calls(&self) -> &[MixCall] {
        &self.calls
    }

    /// Where call `call`'s figures go: its own place for the first [`MAX_TOOLS`] calls, the
    /// shared `other` place after them.
    pub fn stat(call: u8) -> u8 {
        call.min(MAX_TOOLS as u8)
    }

    /// The names the per-tool figures go under, by [`Mix::stat`] place.
    pub fn stat_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .calls
            .iter()
            .take(MAX_TOOLS)
            .map(|c| c.tool.clone())
            .collect();
        if self.calls.len() > MAX_TOOLS {
            names.push("other".into());
        }
        names
    }

    /// Whether some call has a timeout of its own.
    pub fn has_timeouts(&self) -> bool {
        self.calls.iter().any(|c| c.timeout.is_some())
    }

    /// Call `call`'s timeout: its own, else the run's.
    pub fn timeout(&self, call: u8, run: std::time::Duration) -> std::time::Duration {
        self.calls
            .get(usize::from(call))
            .and_then(|c| c.timeout)
            .unwrap_or(run)
    }

    /// Whether more than one tool is called.
    pub fn is_mix(&self) -> bool {
        self.calls.len() > 1
    }

    /// The call request `seq` of connection `conn` (of `conns`) makes: an index into `calls()`.
    pub fn pick(&self, conn: u32, conns: u32, seq: u64) -> usize {
        if self.calls.len() == 1 {
            return 0;
        }
        if self.sequential {
            return (seq % self.calls.len() as u64) as usize;
        }
        let k = seq
            .saturating_mul(u64::from(conns.max(1)))
            .saturating_add(u64::from(conn));
        let x = (k as f64 * STEP + self.offset).fract();
        self.ends
            .partition_point(|end| *end <= x)
            .min(self.calls.len() - 1)
    }

    /// `search=70,fetch=20`, or steps `list>search>fetch`: what reports show.
    pub fn describe(&self) -> String {
        if !self.is_mix() {
            return self.calls[0].tool.clone();
        }
        if self.sequential {
            let names: Vec<&str> = self.calls.iter().map(|c| c.tool.as_str()).collect();
            return names.join(">");
        }
        self.calls
            .iter()
            .map(|c| format!("{}={}", c.tool, c.weight))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// `--mix 'search=70,fetch=20,summarize=10'`: tools and weights (the arguments are `--args`).
pub fn parse_mix(text: &str) -> Result<Vec<(String, u32)>, String> {
    text.split(',')
        .map(|part| {
            let (tool, weight) = part
                .trim()
                .split_once('=')
                .ok_or_else(|| format!("'{part}' is not TOOL=WEIGHT"))?;
            let weight: u32 = weight
                .trim()
                .parse()
                .map_err(|_| format!("'{weight}' is not a whole-number weight"))?;
            let tool = tool.trim();
            if tool.is_empty() {
                return Err(format!("'{part}' names no tool"));
            }
            Ok((tool.to_owned(), weight))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mix(weights: &[(&str, u32)], seed: u64) -> Mix {
        let calls = weights
            .iter()
            .map(|(t, w)| MixCall {
                tool: (*t).to_owned(),
                args: None,
                weight: *w,
                timeout: None,
                think: None,
            })
            .collect();
        Mix::new(calls, seed).unwrap()
    }

    /// Counts per call over `per_conn` requests on each of `conns` connections.
    fn shares(m: &Mix, conns: u32, per_conn: u64) -> Vec<u64> {
        let mut n = vec![0; m.calls().len()];
        for conn in 0..conns {
            for seq in 0..per_conn {
                n[m.pick(conn, conns, seq)] += 1;
            }
        }
        n
    }

    #[test]
    fn every_call_gets_its_share_to_within_a_few_requests() {
        let m = mix(&[("search", 70), ("fetch", 20), ("summarize", 10)], 7);
        for (conns, per_conn) in [(1, 10_000), (64, 157), (7, 1_429), (64, 15_625)] {
            let n = shares(&m, conns, per_conn);
            let total = u64::from(conns) * per_conn;
            for (i, want) in [70u64, 20, 10].iter().enumerate() {
                let exact = (total * want) as f64 / 100.0;
                let off = (n[i] as f64 - exact).abs();
                assert!(
                    off <= 8.0,
                    "{conns}x{per_conn}: call {i} got {} of {total}, {exact} expected",
                    n[i]
                );
            }
        }
    }

    #[test]
    fn the_same_seed_picks_the_same_calls_and_another_seed_other_ones() {
        let a = mix(&[("a", 1), ("b", 1), ("c", 2)], 3);
        let b = mix(&[("a", 1), ("b", 1), ("c", 2)], 3);
        let c = mix(&[("a", 1), ("b", 1), ("c", 2)], 4);
        let picks = |m: &Mix| {
            (0..200u32)
                .map(|s| m.pick(s % 5, 5, u64::from(s / 5)))
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(&a), picks(&b));
        assert_ne!(picks(&a), picks(&c));
    }

    #[test]
    fn tools_past_the_64th_add_up_as_other() {
        let calls: Vec<(String, u32)> = (0..70).map(|i| (format!("t{i}"), 1)).collect();
        let refs: Vec<(&str, u32)> = calls.iter().map(|(t, w)| (t.as_str(), *w)).collect();
        let m = mix(&refs, 0);
        let names = m.stat_names();
        assert_eq!(names.len(), MAX_TOOLS + 1);
        assert_eq!((names[0].as_str(), names[64].as_str()), ("t0", "other"));
        assert_eq!((Mix::stat(3), Mix::stat(64), Mix::stat(69)), (3, 64, 64));
    }

    #[test]
    fn bad_mixes_are_refused_with_a_reason() {
        assert!(parse_mix("a=1,b").unwrap_err().contains("TOOL=WEIGHT"));
        assert!(parse_mix("a=x").unwrap_err().contains("weight"));
        assert_eq!(
            parse_mix(" a = 3 ,b=1").unwrap(),
            [("a".to_owned(), 3), ("b".to_owned(), 1)]
        );
        let call = |t: &str, w| MixCall {
            tool: t.into(),
            args: None,
            weight: w,
            timeout: None,
            think: None,
        };
        assert!(
            Mix::new(vec![call("a", 1), call("a", 2)], 0)
                .unwrap_err()
                .contains("twice")
        );
        assert!(Mix::new(vec![call("a", 0)], 0).unwrap_err().contains("0"));
        let single = Mix::single("echo", None);
        assert!(!single.is_mix());
        assert_eq!(single.pick(3, 8, 99), 0);
        assert_eq!(mix(&[("a", 7), ("b", 3)], 0).describe(), "a=7,b=3");
    }
}
