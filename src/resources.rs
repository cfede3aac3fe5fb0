//! Process limits a load generator runs into: open files. Raised at startup to what the run
//! needs (up to the hard limit), or the run is refused with what is needed and available.

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
        return Err(ConfigError::Rejected {
            name: "--conns".into(),
            reason: format!(
                "needs {needed} open files but the limit is {hard} (raise it with `ulimit -n {needed}` or in limits.conf)"
            ),
        });
    }
    tracing::info!(from = soft, to = needed, "raised the open-file limit");
    Ok(())
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
            err.contains("--conns") && err.contains("open files"),
            "{err}"
        );
    }
}
