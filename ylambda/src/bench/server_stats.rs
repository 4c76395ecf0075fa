//! The server's CPU time and memory, read from `/proc` for a process and all its descendants
//! (`ylambda dev --lambdas` runs the Lambdas as child processes; a Node server is one process).
use std::collections::HashMap;
use std::fs;

/// One reading of a process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Sample {
    /// User + system CPU seconds used so far.
    pub cpu_secs: f64,
    /// Resident memory, bytes.
    pub rss_bytes: u64,
    /// Processes in the tree.
    pub processes: usize,
}

/// Reads the tree rooted at `pid`; `None` when the process is gone or `/proc` is not there
/// (not Linux).
pub fn sample(pid: u32) -> Option<Sample> {
    let tick = clock_ticks_per_sec()?;
    let page = page_size()?;
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in fs::read_dir("/proc").ok()?.flatten() {
        let Some(id) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if let Some(stat) = read_stat(id) {
            children.entry(stat.ppid).or_default().push(id);
        }
    }
    let mut total = Sample::default();
    let mut stack = vec![pid];
    let mut seen_root = false;
    while let Some(id) = stack.pop() {
        let Some(stat) = read_stat(id) else { continue };
        seen_root |= id == pid;
        total.cpu_secs += (stat.utime + stat.stime) as f64 / tick;
        total.rss_bytes += stat.rss_pages.saturating_mul(page);
        total.processes += 1;
        if let Some(kids) = children.get(&id) {
            stack.extend(kids);
        }
    }
    seen_root.then_some(total)
}

struct Stat {
    ppid: u32,
    utime: u64,
    stime: u64,
    rss_pages: u64,
}

/// `/proc/PID/stat`: the command name (field 2) may hold spaces and parentheses, so fields are
/// counted from the last `)`.
fn read_stat(pid: u32) -> Option<Stat> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&text)
}

fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    // Fields from 3 (state) on: ppid is 4, utime 14, stime 15, rss 24.
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |n: usize| fields.get(n - 3).and_then(|f| f.parse::<u64>().ok());
    Some(Stat {
        ppid: u32::try_from(field(4)?).ok()?,
        utime: field(14)?,
        stime: field(15)?,
        rss_pages: field(24)?,
    })
}

#[cfg(unix)]
fn clock_ticks_per_sec() -> Option<f64> {
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then_some(ticks as f64)
}

#[cfg(unix)]
fn page_size() -> Option<u64> {
    // SAFETY: as above.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(page).ok().filter(|p| *p > 0)
}

#[cfg(not(unix))]
fn clock_ticks_per_sec() -> Option<f64> {
    None
}

#[cfg(not(unix))]
fn page_size() -> Option<u64> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_whose_name_holds_spaces_and_parentheses() {
        let line = "4242 (node (v20) x) S 17 4242 4242 0 -1 4194304 1 0 0 0 150 25 0 0 20 0 \
                    11 0 100 1000000 2500 18446744073709551615";
        let stat = parse_stat(line).unwrap();
        assert_eq!(
            (stat.ppid, stat.utime, stat.stime, stat.rss_pages),
            (17, 150, 25, 2500)
        );
        assert!(parse_stat("1 (x) S").is_none());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn samples_this_process_and_a_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("5")
            .spawn()
            .unwrap();
        let me = sample(std::process::id()).unwrap();
        let _ = child.kill();
        let _ = child.wait();
        assert!(me.processes >= 2, "{me:?}");
        assert!(me.rss_bytes > 1024 * 1024, "{me:?}");
        assert!(sample(u32::MAX).is_none());
    }
}
