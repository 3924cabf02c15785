//! What each program used of the machine's cores while the load ran, read from `/proc` when
//! sending starts and when it ends. `scripts/cpu_share.py` sees a whole run, and most of a
//! closed-loop run is the status polling and the verification after the load: its shares are
//! 60–80 % idle. This window is the load itself (the peak, in a closed loop), which is what
//! the benchmark's "CPU share of each process at peak" asks for. Linux only; elsewhere, or
//! if `/proc` cannot be read, there is no reading and the report says so.

use serde::Serialize;
use std::collections::{BTreeMap, HashMap};

/// Program names (`/proc/PID/comm`) and the group each is reported under.
const GROUPS: &[(&str, &str)] = &[
    ("nginx", "nginx"),
    ("ingress", "ingress"),
    ("worker", "worker"),
    ("beam.smp", "rabbitmq"),
    ("erl_child_setup", "rabbitmq"),
    ("mariadbd", "mariadb"),
    ("redis-server", "redis"),
    ("loadgen", "loadgen"),
];

/// One reading of the machine's and every process's CPU time, in clock ticks.
pub(crate) struct Snapshot {
    cores: CoreTicks,
    /// pid → (group, user + system ticks, start time); the start time tells a reused pid.
    procs: HashMap<u32, (&'static str, u64, u64)>,
}

/// The `cpu` line of `/proc/stat`, summed over all cores.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct CoreTicks {
    all: u64,
    idle: u64,
    steal: u64,
}

/// The window's shares, in percent of all cores.
#[derive(Debug, Serialize, PartialEq)]
pub(crate) struct Usage {
    pub(crate) secs: f64,
    /// Neither idle nor waiting for the disk.
    pub(crate) busy_percent: f64,
    /// Time the host ran something else while this virtual machine's cores were ready.
    pub(crate) steal_percent: f64,
    /// Per program group; "other" is every process not named in `GROUPS` (kernel threads).
    pub(crate) share_percent: BTreeMap<&'static str, f64>,
}

impl Snapshot {
    pub(crate) fn take() -> Option<Snapshot> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cores = parse_cpu_line(stat.lines().next()?)?;
        let mut procs = HashMap::new();
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            // A process may end between listing and reading: it is simply not counted.
            let Ok(raw) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            if let Some((comm, ticks, start)) = parse_pid_stat(&raw) {
                procs.insert(pid, (group_of(comm), ticks, start));
            }
        }
        Some(Snapshot { cores, procs })
    }
}

/// Shares between two readings `secs` apart. A process that appeared in between counts from
/// zero; one that ended in between is lost (its last ticks cannot be read).
pub(crate) fn usage(before: &Snapshot, after: &Snapshot, secs: f64) -> Usage {
    let all = after.cores.all.saturating_sub(before.cores.all).max(1) as f64;
    let idle = after.cores.idle.saturating_sub(before.cores.idle) as f64;
    let steal = after.cores.steal.saturating_sub(before.cores.steal) as f64;
    let mut used: BTreeMap<&'static str, u64> = BTreeMap::new();
    for (pid, (group, ticks, start)) in &after.procs {
        let earlier = match before.procs.get(pid) {
            Some((_, old_ticks, old_start)) if old_start == start => *old_ticks,
            _ => 0,
        };
        *used.entry(group).or_default() += ticks.saturating_sub(earlier);
    }
    let percent = |v: f64| (1000.0 * v / all).round() / 10.0;
    Usage {
        secs: (secs * 1000.0).round() / 1000.0,
        busy_percent: percent(all - idle),
        steal_percent: percent(steal),
        share_percent: used
            .into_iter()
            .map(|(group, ticks)| (group, percent(ticks as f64)))
            .collect(),
    }
}

impl Usage {
    /// The engine's CPU (every program but the load generator and "other") per request, in
    /// milliseconds, over `requests` requests sent in this window.
    pub(crate) fn engine_ms_per(&self, requests: usize) -> f64 {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        let engine: f64 = self
            .share_percent
            .iter()
            .filter(|(group, _)| !matches!(**group, "loadgen" | "other"))
            .map(|(_, share)| share)
            .sum();
        let ms = engine / 100.0 * self.secs * cores * 1000.0 / requests.max(1) as f64;
        (ms * 1000.0).round() / 1000.0
    }
}

fn group_of(comm: &str) -> &'static str {
    GROUPS
        .iter()
        .find(|(name, _)| *name == comm)
        .map_or("other", |(_, group)| group)
}

/// `cpu  user nice system idle iowait irq softirq steal guest guest_nice`: guest time is
/// already inside user and nice, so only the first eight columns are summed.
fn parse_cpu_line(line: &str) -> Option<CoreTicks> {
    let mut fields = line.split_whitespace();
    if fields.next()? != "cpu" {
        return None;
    }
    let values: Vec<u64> = fields
        .take(8)
        .map(|v| v.parse().ok())
        .collect::<Option<_>>()?;
    if values.len() < 5 {
        return None;
    }
    Some(CoreTicks {
        all: values.iter().sum(),
        idle: values[3] + values[4],
        steal: values.get(7).copied().unwrap_or(0),
    })
}

/// `/proc/PID/stat`: (comm, utime + stime, starttime). The name sits in parentheses and may
/// itself hold spaces and parentheses, so the fields are counted from the last `)`.
fn parse_pid_stat(raw: &str) -> Option<(&str, u64, u64)> {
    let open = raw.find('(')?;
    let close = raw.rfind(')')?;
    let comm = raw.get(open + 1..close)?;
    let rest: Vec<&str> = raw.get(close + 2..)?.split_whitespace().collect();
    // After the name: state is field 3 of proc(5), so field N is rest[N - 3].
    let utime: u64 = rest.get(11)?.parse().ok()?;
    let stime: u64 = rest.get(12)?.parse().ok()?;
    let start: u64 = rest.get(19)?.parse().ok()?;
    Some((comm, utime + stime, start))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(comm: &str, utime: u64, stime: u64, start: u64) -> String {
        format!(
            "4242 ({comm}) S 1 4242 4242 0 -1 4194560 100 0 0 0 {utime} {stime} 0 0 20 0 3 0 {start} 1000 100 18446744073709551615"
        )
    }

    #[test]
    fn a_process_name_with_spaces_and_parentheses_is_read_whole() {
        let raw = line("tokio (rt) 1", 70, 30, 555);
        assert_eq!(parse_pid_stat(&raw), Some(("tokio (rt) 1", 100, 555)));
        assert_eq!(parse_pid_stat("12 (cut"), None);
        assert_eq!(parse_pid_stat("12 (short) S 1 2"), None);
    }

    #[test]
    fn the_cpu_line_leaves_guest_time_out_of_the_total() {
        assert_eq!(
            parse_cpu_line("cpu  100 5 50 800 20 1 2 30 40 0"),
            Some(CoreTicks {
                all: 1008,
                idle: 820,
                steal: 30
            })
        );
        assert_eq!(parse_cpu_line("cpu0 1 2 3 4 5 6 7 8"), None);
        assert_eq!(parse_cpu_line("cpu  1 2 x 4 5"), None);
    }

    #[test]
    fn shares_count_each_process_from_its_own_start_and_group_by_program() {
        let snapshot = |all, idle, steal, procs: &[(u32, &'static str, u64, u64)]| Snapshot {
            cores: CoreTicks { all, idle, steal },
            procs: procs.iter().map(|&(p, g, t, s)| (p, (g, t, s))).collect(),
        };
        let before = snapshot(
            10_000,
            5_000,
            100,
            &[
                (1, "ingress", 500, 7),
                (2, "ingress", 40, 8),
                (3, "other", 900, 9),
            ],
        );
        let after = snapshot(
            11_000,
            5_400,
            150,
            &[
                (1, "ingress", 600, 7), // +100
                (2, "ingress", 90, 8),  // +50
                (3, "other", 20, 99),   // pid reused by a new process: its 20 ticks
                (4, "nginx", 30, 120),  // new: all 30
            ],
        );
        let u = usage(&before, &after, 0.5);
        assert_eq!(u.busy_percent, 60.0);
        assert_eq!(u.steal_percent, 5.0);
        assert_eq!(u.secs, 0.5);
        assert_eq!(
            u.share_percent,
            BTreeMap::from([("ingress", 15.0), ("nginx", 3.0), ("other", 2.0)])
        );
    }

    #[test]
    fn program_names_map_to_their_groups() {
        assert_eq!(group_of("beam.smp"), "rabbitmq");
        assert_eq!(group_of("mariadbd"), "mariadb");
        assert_eq!(group_of("kworker/0:1"), "other");
    }
}
