//! Which process owns a run: `pid:start-time`, so a recycled pid is not mistaken for the owner.

/// This process's identity.
pub fn current() -> String {
    let pid = std::process::id();
    format!("{pid}:{}", start_time(pid).unwrap_or_default())
}

/// Whether the process named by an identity from [`current`] is still running.
pub fn is_alive(owner: &str) -> bool {
    let Some((pid, started)) = owner.split_once(':') else { return false };
    let Ok(pid) = pid.parse::<u32>() else { return false };
    start_time(pid).is_some_and(|now| now == started)
}

/// A readable form for messages.
pub fn describe(owner: &str) -> String {
    match owner.split_once(':') {
        Some((pid, _)) => format!("pid {pid}"),
        None => "unknown process".to_owned(),
    }
}

/// Field 22 of /proc/<pid>/stat: the process's start time in clock ticks since boot.
fn start_time(pid: u32) -> Option<String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may contain spaces; fields after it follow the last ')'.
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19).map(str::to_owned)
}
