//! Which process owns a run: `pid:start-time@host`, so a recycled pid is not mistaken for the
//! owner, and a server sharing the database from another machine is not judged by this one's pids.

/// This process's identity.
pub fn current() -> String {
    let pid = std::process::id();
    format!("{pid}:{}@{}", start_time(pid).unwrap_or_default(), host())
}

/// What this machine can tell of an owner.
#[derive(Debug, PartialEq, Eq)]
pub enum Seen {
    /// A process of this machine, running.
    Alive,
    /// A process of this machine that has ended.
    Gone,
    /// A process of another machine: only its lease tells.
    Elsewhere,
}

/// What became of the process named by an identity from [`current`].
pub fn seen(owner: &str) -> Seen {
    // Identities written before hosts were recorded are of this machine.
    let (process, on) = owner.split_once('@').unwrap_or((owner, ""));
    if !on.is_empty() && on != host() {
        return Seen::Elsewhere;
    }
    let Some((pid, started)) = process.split_once(':') else { return Seen::Gone };
    let Ok(pid) = pid.parse::<u32>() else { return Seen::Gone };
    if start_time(pid).is_some_and(|now| now == started) { Seen::Alive } else { Seen::Gone }
}

/// Whether the owner may still be running (it is, or it is on a machine this one cannot see).
pub fn may_be_alive(owner: &str) -> bool {
    seen(owner) != Seen::Gone
}

/// A readable form for messages.
pub fn describe(owner: &str) -> String {
    let (process, on) = owner.split_once('@').unwrap_or((owner, ""));
    match (process.split_once(':'), on) {
        (Some((pid, _)), "") => format!("pid {pid}"),
        (Some((pid, _)), host) => format!("pid {pid} on {host}"),
        (None, _) => "unknown process".to_owned(),
    }
}

/// This machine's name, as the kernel has it.
fn host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_owned()).unwrap_or_default()
}

/// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owners_are_judged_by_their_own_machine() {
        let me = current();
        assert_eq!(seen(&me), Seen::Alive);
        let (process, _) = me.split_once('@').unwrap();
        assert_eq!(seen(process), Seen::Alive, "an identity without a host is of this machine");
        assert_eq!(seen(&format!("{process}@another-machine")), Seen::Elsewhere);
        assert_eq!(seen(&format!("{}:0@{}", std::process::id(), host())), Seen::Gone, "a recycled pid");
        assert_eq!(describe("12:34@db1"), "pid 12 on db1");
    }
}
