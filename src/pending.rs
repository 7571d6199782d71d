//! Creation tickets: how a VM create that was cut off (its process killed) is found and undone
//! by a later run. See "Creating a VM, and pending records" in ARCHITECTURE.md.
//!
//! Before a VM exists its addresses are held by records marked pending whose owner id is a
//! ticket: `<instance uuid>@<host>:<pid>:<start>`. The instance UUID is given to the clone
//! (`config.instanceUuid`), so the VM can be found even when nobody learnt its moref; host, pid
//! and process start time tell whether the creating process still runs.

use std::time::Duration;

/// Pending records of a process on another machine (or one whose liveness cannot be checked)
/// are left alone for this long: no create takes that long.
pub const PENDING_TTL: Duration = Duration::from_secs(3600);

/// A ticket whose create is over without having finished, and the addresses it still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Abandoned {
    pub ticket: Ticket,
    pub addresses: Vec<std::net::IpAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ticket {
    pub instance_uuid: String,
    pub host: String,
    pub pid: u32,
    /// Start time of the process in clock ticks since boot (`/proc/<pid>/stat` field 22): a
    /// recycled pid has another.
    pub start: u64,
}

impl Ticket {
    /// A ticket of this process for a new VM.
    pub fn mine() -> Ticket {
        let pid = std::process::id();
        Ticket {
            instance_uuid: uuid::Uuid::new_v4().to_string(),
            host: this_host(),
            pid,
            start: process_start(pid).unwrap_or_default(),
        }
    }

    pub fn parse(owner_id: &str) -> Option<Ticket> {
        let (uuid, rest) = owner_id.split_once('@')?;
        let mut parts = rest.rsplitn(3, ':');
        let start = parts.next()?.parse().ok()?;
        let pid = parts.next()?.parse().ok()?;
        let host = parts.next()?.to_string();
        uuid::Uuid::parse_str(uuid).ok()?;
        Some(Ticket {
            instance_uuid: uuid.to_string(),
            host,
            pid,
            start,
        })
    }

    pub fn owner_id(&self) -> String {
        format!(
            "{}@{}:{}:{}",
            self.instance_uuid, self.host, self.pid, self.start
        )
    }

    /// Whether the create behind the ticket is over without having finished: its process is
    /// gone from this machine, or the ticket is older than [`PENDING_TTL`]. `age` is the age of
    /// its records; `alive` checks a pid and start time on this machine.
    pub fn abandoned(
        &self,
        age: Duration,
        this_host: &str,
        alive: impl Fn(u32, u64) -> bool,
    ) -> bool {
        if age >= PENDING_TTL {
            return true;
        }
        self.host == this_host && !alive(self.pid, self.start)
    }
}

pub fn this_host() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_string())
}

/// Start time of a process (clock ticks since boot), `None` when it does not exist.
pub fn process_start(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_start(&stat)
}

/// Field 22 of `/proc/<pid>/stat`; the command name (field 2) may hold spaces and parentheses.
fn parse_start(stat: &str) -> Option<u64> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
}

/// Whether the process `pid` with that start time runs on this machine. Without `/proc` the
/// answer is yes, so only the TTL can declare a ticket abandoned.
pub fn process_alive(pid: u32, start: u64) -> bool {
    if !std::path::Path::new("/proc/self/stat").exists() {
        return true;
    }
    process_start(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects() {
        let t = Ticket {
            instance_uuid: "4b1e9c1a-3f57-4f55-9d57-8d6f1e2a0c11".into(),
            host: "ci:runner-1".into(),
            pid: 4242,
            start: 98765,
        };
        assert_eq!(Ticket::parse(&t.owner_id()), Some(t.clone()));
        for bad in [
            "4213a6f2-0c4e-4f55-9d57-8d6f1e2a0c11",
            "not-a-uuid@h:1:2",
            "4b1e9c1a-3f57-4f55-9d57-8d6f1e2a0c11@h:x:2",
            "4b1e9c1a-3f57-4f55-9d57-8d6f1e2a0c11@h:1",
        ] {
            assert_eq!(Ticket::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn abandoned_when_the_process_is_gone_or_too_old() {
        let t = Ticket {
            instance_uuid: "4b1e9c1a-3f57-4f55-9d57-8d6f1e2a0c11".into(),
            host: "a".into(),
            pid: 1,
            start: 5,
        };
        let young = Duration::from_secs(10);
        assert!(!t.abandoned(young, "a", |_, _| true));
        assert!(t.abandoned(young, "a", |_, _| false));
        // Another machine's process cannot be checked: only age counts.
        assert!(!t.abandoned(young, "b", |_, _| false));
        assert!(t.abandoned(PENDING_TTL, "b", |_, _| true));
    }

    #[test]
    fn this_process_is_alive_and_its_stat_parses() {
        let me = Ticket::mine();
        assert!(process_alive(me.pid, me.start));
        assert!(!process_alive(me.pid, me.start + 1));
        assert_eq!(
            parse_start("12 (a b) c) S 1 1 1 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 777 0"),
            Some(777)
        );
    }
}
