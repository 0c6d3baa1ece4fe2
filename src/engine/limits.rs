//! Process limits that decide how many devices fit: the open-file limit above all.

/// Open-file limits `(soft, hard)` after raising the soft limit to the hard one.
pub fn raise_open_files() -> (u64, u64) {
    #[cfg(unix)]
    {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit only read/write the struct we pass.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
                return (0, 0);
            }
            if lim.rlim_cur < lim.rlim_max {
                let raised = libc::rlimit {
                    rlim_cur: lim.rlim_max,
                    rlim_max: lim.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    lim = raised;
                }
            }
        }
        (lim.rlim_cur, lim.rlim_max)
    }
    #[cfg(not(unix))]
    {
        (0, 0)
    }
}

/// File descriptors the process needs besides device sockets (runtime, broker listener, files, stdio).
pub const FD_RESERVE: u64 = 64;

/// Whether `devices` sockets fit under `soft` open files, with the reserve (and the embedded broker's
/// own sockets when it runs in this process).
pub fn fits(devices: u64, soft: u64, embedded_broker: bool) -> bool {
    let per_device = if embedded_broker { 2 } else { 1 };
    devices
        .saturating_mul(per_device)
        .saturating_add(FD_RESERVE)
        <= soft
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_table() {
        assert!(fits(1000, 20_000, false));
        assert!(fits(19_900, 20_000, false));
        assert!(!fits(19_990, 20_000, false));
        assert!(!fits(10_000, 20_000, true));
        assert!(fits(9_000, 20_000, true));
    }
}
