//! Process limits a load generator runs into: open files, and ephemeral ports per source
//! address; and the process's memory (current and peak RSS), which client and server report. The open-file limit is raised at startup to what the run needs (up to the hard
//! limit), or the run is refused with what is needed, what is available and which limit to
//! raise.

use crate::error::ConfigError;

/// Descriptors beyond the connections: stdio, the runtime, output files, the embedded server.
const SPARE: u64 = 64;

fn nofile() -> Option<(u64, u64)> {
    // SAFETY: getrlimit writes into the struct we pass.
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    (unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0)
        .then_some((lim.rlim_cur, lim.rlim_max))
}

fn set_soft(soft: u64, hard: u64) -> bool {
    let lim = libc::rlimit {
        rlim_cur: soft,
        rlim_max: hard,
    };
    // SAFETY: setrlimit reads the struct we pass; raising the soft limit up to the hard limit
    // needs no privilege.
    unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 }
}

/// Makes room for `sockets` open sockets (two per connection when the server is embedded).
pub fn ensure_sockets(sockets: u64) -> Result<(), ConfigError> {
    let needed = sockets + SPARE;
    let Some((soft, hard)) = nofile() else {
        return Ok(());
    };
    if soft >= needed {
        return Ok(());
    }
    if hard < needed || !set_soft(needed, hard) {
        // Which limit: the hard one (root, or `nofile` in limits.conf), and above the kernel's
        // ceiling fs.nr_open first.
        let ceiling = read_proc("/proc/sys/fs/nr_open").and_then(|s| s.trim().parse::<u64>().ok());
        let how = match ceiling {
            Some(max) if max < needed => format!(
                "the kernel's ceiling fs.nr_open is {max}: `sysctl -w fs.nr_open={needed}`, then \
                 the hard limit: `ulimit -Hn {needed}` as root or `nofile` in limits.conf"
            ),
            _ => format!(
                "raise the hard limit: `ulimit -Hn {needed}` as root, or `nofile {needed}` in \
                 /etc/security/limits.conf (a container: --ulimit nofile={needed})"
            ),
        };
        return Err(ConfigError::Rejected {
            name: "--conns".into(),
            reason: format!("needs {needed} open files but the hard limit is {hard}: {how}"),
        });
    }
    tracing::info!(from = soft, to = needed, "raised the open-file limit");
    Ok(())
}

fn read_proc(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

/// Ephemeral ports one source address offers (Linux: net.ipv4.ip_local_port_range).
pub fn ports_per_source() -> Option<u64> {
    let range = read_proc("/proc/sys/net/ipv4/ip_local_port_range")?;
    let mut it = range.split_whitespace().map(|n| n.parse::<u64>().ok());
    let (lo, hi) = (it.next()??, it.next()??);
    (hi >= lo).then(|| hi - lo + 1)
}

/// `conns` connections to one destination from `sources` source addresses (0: the system's
/// choice, one address) must fit their ephemeral ports; refused otherwise with how many
/// addresses `--bind-ip` needs. Past half of them it fits, with a warning to give: the kernel's
/// search for a free port in connect() grows with how full the range is (seen here at 100,000
/// connections over 28,232 ports: 16 s of 96 % system CPU, setup p99 in seconds; spread over
/// more addresses, setup p99 under a millisecond).
pub fn ensure_source_ports(conns: u64, sources: usize) -> Result<Option<String>, ConfigError> {
    let Some(per) = ports_per_source() else {
        return Ok(None);
    };
    let have = per * sources.max(1) as u64;
    let example = |need: u64| format!("--bind-ip 127.0.0.2-127.0.0.{}", need + 1);
    if conns <= have / 2 {
        return Ok(None);
    }
    if conns <= have {
        let need = (conns * 4).div_ceil(per); // a quarter of each range at most
        return Ok(Some(format!(
            "{conns} connections use {:.0}% of the ephemeral ports of {} source address(es) \
             ({per} each); connect() slows as the range fills: spread them with {}",
            conns as f64 * 100.0 / have as f64,
            sources.max(1),
            example(need)
        )));
    }
    let need = conns.div_ceil(per);
    Err(ConfigError::Rejected {
        name: "--conns".into(),
        reason: format!(
            "{conns} connections to one address need {need} source addresses ({per} ephemeral \
             ports each, net.ipv4.ip_local_port_range); give them with --bind-ip, e.g. {}",
            example(need)
        ),
    })
}

/// Peak resident set size of the process, in KiB.
pub fn peak_rss_kb() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we pass; RUSAGE_SELF is always valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) } != 0 {
        return 0;
    }
    ru.ru_maxrss.max(0) as u64
}

/// Current resident set size in KiB (Linux), for per-connection memory.
pub fn current_rss_kb() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * page.max(0) as u64 / 1024)
}

/// The server takes what it may: the soft limit goes up to the hard limit.
pub fn raise_to_hard() {
    if let Some((soft, hard)) = nofile()
        && soft < hard
    {
        let _ = set_soft(hard, hard);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_needs_pass_and_impossible_ones_name_the_numbers() {
        assert!(ensure_sockets(10).is_ok());
        let err = ensure_sockets(u64::MAX / 2).unwrap_err().to_string();
        assert!(
            err.contains("--conns") && err.contains("open files") && err.contains("hard limit"),
            "{err}"
        );
    }

    #[test]
    fn connections_past_one_addresss_ports_need_more_source_addresses() {
        let Some(per) = ports_per_source() else {
            return; // not Linux: nothing to check against
        };
        assert_eq!(ensure_source_ports(per / 2, 0).unwrap(), None);
        assert!(
            ensure_source_ports(per, 0)
                .unwrap()
                .is_some_and(|w| w.contains("100%") && w.contains("--bind-ip 127.0.0.2-127.0.0.5"))
        );
        assert_eq!(ensure_source_ports(2 * per + 1, 5).unwrap(), None);
        let err = ensure_source_ports(2 * per + 1, 1).unwrap_err().to_string();
        assert!(
            err.contains("need 3 source addresses")
                && err.contains("--bind-ip 127.0.0.2-127.0.0.4"),
            "{err}"
        );
    }
}
