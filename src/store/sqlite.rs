//! The embedded store: one SQLite file shared by every Terraform run of a user on a machine.
//!
//! Created with mode 0600 in a directory created 0700 (an existing file with a wider mode is
//! set to 0600, with a warning), WAL journal (readers never block the writer), a busy timeout so a
//! second process waits instead of failing, and versioned migrations. Every transaction starts
//! with `BEGIN IMMEDIATE`: it takes the write lock first, so the check and the write of an
//! allocation can never interleave with another process's.

use std::net::IpAddr;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use ipnet::IpNet;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::{
    ip_column, ip_of_column, key_column, key_of_column, AddressRecord, Backend, OwnerKind, Result,
    StoreError, SubnetRecord, Tx, WireLink,
};
use crate::ipam::ranges::{Key, Range};
use crate::ipam::subnet::{Policy, SubnetSpec};

/// Schema versions, applied in order; never edit a released one, add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE subnets (
    id          TEXT PRIMARY KEY,
    vcenter     TEXT NOT NULL,
    name        TEXT NOT NULL,
    wire_id     TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    start_ip    INTEGER NOT NULL,
    end_ip      INTEGER NOT NULL,
    gateway     INTEGER,
    dns_servers TEXT NOT NULL,
    domain      TEXT,
    vlan_id     INTEGER,
    policy      TEXT NOT NULL,
    reserved    TEXT NOT NULL
);
CREATE INDEX subnets_vcenter ON subnets (vcenter);
CREATE TABLE subnet_wires (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    wire_id   TEXT NOT NULL,
    detected  INTEGER NOT NULL,
    attached  INTEGER NOT NULL,
    PRIMARY KEY (subnet_id, wire_id)
);
CREATE TABLE addresses (
    subnet_id  TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    ip         INTEGER NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    vm_uuid    TEXT,
    mac        TEXT,
    wire_id    TEXT,
    pending    INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX addresses_owner ON addresses (owner_kind, owner_id);
CREATE TABLE held_runs (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    start_ip  INTEGER NOT NULL,
    end_ip    INTEGER NOT NULL,
    PRIMARY KEY (subnet_id, start_ip)
);
"#,
    r#"
CREATE INDEX addresses_vm ON addresses (vm_uuid);
CREATE INDEX addresses_kind ON addresses (subnet_id, owner_kind);
"#,
    r#"
ALTER TABLE addresses ADD COLUMN description TEXT;
"#,
    // Addresses of either family: every address column becomes the 16 bytes of its number
    // (`super::key_column`; IPv4 as ::ffff:a.b.c.d). The subnets' columns are replaced one by
    // one (they are in no index); addresses and held_runs, whose keys hold addresses, are
    // copied into new tables (nothing references them, so dropping the old ones cascades to
    // nothing).
    r#"
ALTER TABLE subnets ADD COLUMN start_key BLOB NOT NULL DEFAULT x'';
ALTER TABLE subnets ADD COLUMN end_key BLOB NOT NULL DEFAULT x'';
ALTER TABLE subnets ADD COLUMN gateway_key BLOB;
UPDATE subnets SET
    start_key = unhex('00000000000000000000FFFF' || printf('%08X', start_ip)),
    end_key = unhex('00000000000000000000FFFF' || printf('%08X', end_ip)),
    gateway_key = CASE WHEN gateway IS NULL THEN NULL
        ELSE unhex('00000000000000000000FFFF' || printf('%08X', gateway)) END;
ALTER TABLE subnets DROP COLUMN start_ip;
ALTER TABLE subnets DROP COLUMN end_ip;
ALTER TABLE subnets DROP COLUMN gateway;
ALTER TABLE subnets RENAME COLUMN start_key TO start_ip;
ALTER TABLE subnets RENAME COLUMN end_key TO end_ip;
ALTER TABLE subnets RENAME COLUMN gateway_key TO gateway;
CREATE TABLE addresses_16 (
    subnet_id   TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    ip          BLOB NOT NULL,
    owner_kind  TEXT NOT NULL,
    owner_id    TEXT NOT NULL,
    vm_uuid     TEXT,
    mac         TEXT,
    wire_id     TEXT,
    pending     INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    description TEXT,
    PRIMARY KEY (subnet_id, ip)
);
INSERT INTO addresses_16
    SELECT subnet_id, unhex('00000000000000000000FFFF' || printf('%08X', ip)), owner_kind,
        owner_id, vm_uuid, mac, wire_id, pending, created_at, description
    FROM addresses;
DROP TABLE addresses;
ALTER TABLE addresses_16 RENAME TO addresses;
CREATE INDEX addresses_owner ON addresses (owner_kind, owner_id);
CREATE INDEX addresses_vm ON addresses (vm_uuid);
CREATE INDEX addresses_kind ON addresses (subnet_id, owner_kind);
CREATE TABLE held_runs_16 (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    start_ip  BLOB NOT NULL,
    end_ip    BLOB NOT NULL,
    PRIMARY KEY (subnet_id, start_ip)
);
INSERT INTO held_runs_16
    SELECT subnet_id, unhex('00000000000000000000FFFF' || printf('%08X', start_ip)),
        unhex('00000000000000000000FFFF' || printf('%08X', end_ip))
    FROM held_runs;
DROP TABLE held_runs;
ALTER TABLE held_runs_16 RENAME TO held_runs;
"#,
];

pub struct SqliteBackend {
    path: String,
    conn: Mutex<Connection>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

impl SqliteBackend {
    pub fn open(path: &str) -> Result<Self> {
        let file = Path::new(path);
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            create_private_dir(dir)?;
        }
        create_private(file)?;
        tighten(file);
        let conn =
            Connection::open(file).map_err(|e| unavailable(format!("cannot open {path}: {e}")))?;
        conn.busy_timeout(Duration::from_secs(60))
            .map_err(unavailable)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(|e| unavailable(format!("cannot use {path}: {e}")))?;
        conn.pragma_update(None, "foreign_keys", "ON")
            .map_err(unavailable)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(unavailable)?;
        let backend = SqliteBackend {
            path: path.to_string(),
            conn: Mutex::new(conn),
        };
        backend.migrate()?;
        Ok(backend)
    }

    fn migrate(&self) -> Result<()> {
        let mut conn = self.conn.lock().map_err(unavailable)?;
        // IMMEDIATE: two processes opening a new file at once migrate it one after the other.
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(unavailable)?;
        let current: i64 = tx
            .query_row(
                "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                [],
                |r| r.get(0),
            )
            .map_err(unavailable)?;
        if current > MIGRATIONS.len() as i64 {
            return Err(unavailable(format!(
                "{} has schema version {current}, newer than this provider knows ({}); upgrade the provider",
                self.path,
                MIGRATIONS.len()
            )));
        }
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
            tx.execute_batch(sql).map_err(unavailable)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [i as i64 + 1],
            )
            .map_err(unavailable)?;
        }
        tx.commit().map_err(unavailable)
    }
}

/// Creates the directories missing on the way to the store with mode 0700, whatever the
/// umask; directories that exist are the user's choice and stay as they are.
fn create_private_dir(dir: &Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| unavailable(format!("cannot create directory {}: {e}", dir.display())))
}

/// Brings the store file and its `-wal`/`-shm` companions to mode 0600 when a wider mode was
/// left on them (an older version, a copy, a umask of 000), with a warning: other users could
/// read the addresses and VM ids, or with write access corrupt the store. A file that cannot
/// be changed (another owner) only gets the warning.
fn tighten(file: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mut names = vec![file.to_path_buf()];
        for suffix in ["-wal", "-shm"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            names.push(name.into());
        }
        for name in names {
            let Ok(meta) = std::fs::metadata(&name) else {
                continue;
            };
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 == 0 {
                continue;
            }
            match std::fs::set_permissions(&name, std::fs::Permissions::from_mode(0o600)) {
                Ok(()) => tracing::warn!(
                    file = %name.display(),
                    "the IPAM store file had mode {mode:03o}, readable by other users; set it to 0600"
                ),
                Err(e) => tracing::warn!(
                    file = %name.display(),
                    "the IPAM store file has mode {mode:03o}, readable by other users, and cannot \
                     be set to 0600 ({e}); restrict it by hand"
                ),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = file;
}

/// Creates the file with mode 0600 if it does not exist: addresses and VM ids are nobody
/// else's business.
fn create_private(file: &Path) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(file)
        .map(drop)
        .map_err(|e| unavailable(format!("cannot open {}: {e}", file.display())))
}

impl Backend for SqliteBackend {
    fn with_tx(&self, commit: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut conn = self.conn.lock().map_err(unavailable)?;
        let tx = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(unavailable)?;
        let mut stx = SqliteTx { tx: &tx };
        if let Err(e) = f(&mut stx) {
            // A statement or a row this code cannot take: a newer release may have migrated
            // the file since this process opened it. (Dropping `tx` rolls back.)
            if matches!(e, StoreError::Unavailable(_) | StoreError::Corrupt(_)) {
                let version: rusqlite::Result<i64> = tx.query_row(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_version",
                    [],
                    |r| r.get(0),
                );
                if let Some(version) = version.ok().filter(|v| *v > MIGRATIONS.len() as i64) {
                    return Err(super::upgraded_meanwhile(version, MIGRATIONS.len()));
                }
            }
            return Err(e);
        }
        if commit {
            tx.commit().map_err(unavailable)
        } else {
            tx.rollback().map_err(unavailable)
        }
    }

    fn describe(&self) -> String {
        format!("sqlite://{}", self.path)
    }
}

struct SqliteTx<'c> {
    tx: &'c rusqlite::Transaction<'c>,
}

fn db(e: rusqlite::Error) -> StoreError {
    unavailable(e)
}

const SUBNET_COLUMNS: &str =
    "id, vcenter, name, wire_id, cidr, start_ip, end_ip, gateway, dns_servers, domain, vlan_id, policy, reserved";
const ADDRESS_COLUMNS: &str =
    "subnet_id, ip, owner_kind, owner_id, vm_uuid, mac, wire_id, pending, created_at, description";

fn ip_of(bytes: Vec<u8>) -> std::result::Result<IpAddr, StoreError> {
    ip_of_column(&bytes, "an address column")
}

fn subnet_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<std::result::Result<SubnetRecord, StoreError>> {
    let cidr: String = row.get(4)?;
    let dns: String = row.get(8)?;
    let policy: String = row.get(11)?;
    let reserved: String = row.get(12)?;
    let parse = || -> std::result::Result<SubnetRecord, StoreError> {
        let bad = |what: &str| StoreError::Corrupt(format!("subnet column {what}"));
        Ok(SubnetRecord {
            id: row.get(0).map_err(db)?,
            vcenter: row.get(1).map_err(db)?,
            name: row.get(2).map_err(db)?,
            wire_id: row.get(3).map_err(db)?,
            domain: row.get(9).map_err(db)?,
            spec: SubnetSpec {
                cidr: cidr.parse::<IpNet>().map_err(|_| bad("cidr"))?,
                start: ip_of(row.get(5).map_err(db)?)?,
                end: ip_of(row.get(6).map_err(db)?)?,
                gateway: row
                    .get::<_, Option<Vec<u8>>>(7)
                    .map_err(db)?
                    .map(ip_of)
                    .transpose()?,
                dns_servers: split(&dns)
                    .map(|s| s.parse().map_err(|_| bad("dns_servers")))
                    .collect::<std::result::Result<_, _>>()?,
                vlan_id: row.get::<_, Option<i64>>(10).map_err(db)?.map(|v| v as u16),
                policy: policy.parse::<Policy>().map_err(|_| bad("policy"))?,
                reserved: split(&reserved)
                    .map(|s| s.parse().map_err(|_| bad("reserved")))
                    .collect::<std::result::Result<_, _>>()?,
            },
        })
    };
    Ok(parse())
}

fn split(list: &str) -> impl Iterator<Item = &str> {
    list.split(',').filter(|s| !s.is_empty())
}

fn join<T: ToString>(items: &[T]) -> String {
    items
        .iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

fn address_from_row(
    row: &Row<'_>,
) -> rusqlite::Result<std::result::Result<AddressRecord, StoreError>> {
    let kind: String = row.get(2)?;
    let Ok(owner_kind) = kind.parse::<OwnerKind>() else {
        return Ok(Err(StoreError::Corrupt(format!(
            "unknown owner kind {kind:?}"
        ))));
    };
    let ip = match ip_of(row.get(1)?) {
        Ok(ip) => ip,
        Err(e) => return Ok(Err(e)),
    };
    Ok(Ok(AddressRecord {
        subnet_id: row.get(0)?,
        ip,
        owner_kind,
        owner_id: row.get(3)?,
        vm_uuid: row.get(4)?,
        mac: row.get(5)?,
        wire_id: row.get(6)?,
        pending: row.get::<_, i64>(7)? != 0,
        created_at: row.get(8)?,
        description: row.get(9)?,
    }))
}

impl SqliteTx<'_> {
    fn subnet_query(
        &mut self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<SubnetRecord>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(args, subnet_from_row).map_err(db)?;
        rows.map(|r| r.map_err(db)?).collect()
    }

    fn address_query(
        &mut self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<AddressRecord>> {
        let mut stmt = self.tx.prepare_cached(sql).map_err(db)?;
        let rows = stmt.query_map(args, address_from_row).map_err(db)?;
        rows.map(|r| r.map_err(db)?).collect()
    }
}

impl Tx for SqliteTx<'_> {
    fn subnets(&mut self, vcenter: Option<&str>) -> Result<Vec<SubnetRecord>> {
        match vcenter {
            Some(vc) => self.subnet_query(
                &format!(
                    "SELECT {SUBNET_COLUMNS} FROM subnets WHERE vcenter = ?1 ORDER BY start_ip"
                ),
                [vc],
            ),
            None => self.subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets ORDER BY start_ip"),
                [],
            ),
        }
    }

    fn subnet(&mut self, id: &str) -> Result<Option<SubnetRecord>> {
        Ok(self
            .subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets WHERE id = ?1"),
                [id],
            )?
            .pop())
    }

    fn lock_subnet(&mut self, _id: &str) -> Result<()> {
        // BEGIN IMMEDIATE already holds the database's write lock.
        Ok(())
    }

    fn lock_vcenter(&mut self, _vcenter: &str) -> Result<()> {
        Ok(())
    }

    fn put_subnet(&mut self, s: &SubnetRecord) -> Result<()> {
        let spec = &s.spec;
        self.tx
            .prepare_cached(&format!(
                // An upsert, not INSERT OR REPLACE: a replace deletes the row first, and the
                // foreign keys would cascade that to the subnet's addresses and wires.
                "INSERT INTO subnets ({SUBNET_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (id) DO UPDATE SET vcenter = excluded.vcenter, name = excluded.name,
                 wire_id = excluded.wire_id, cidr = excluded.cidr, start_ip = excluded.start_ip,
                 end_ip = excluded.end_ip, gateway = excluded.gateway, dns_servers = excluded.dns_servers,
                 domain = excluded.domain, vlan_id = excluded.vlan_id, policy = excluded.policy,
                 reserved = excluded.reserved"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    s.id,
                    s.vcenter,
                    s.name,
                    s.wire_id,
                    spec.cidr.to_string(),
                    ip_column(spec.start),
                    ip_column(spec.end),
                    spec.gateway.map(ip_column),
                    join(&spec.dns_servers),
                    s.domain,
                    spec.vlan_id,
                    spec.policy.as_str(),
                    join(&spec.reserved),
                ])
            })
            .map(drop)
            .map_err(db)
    }

    fn delete_subnet(&mut self, id: &str) -> Result<()> {
        self.tx
            .execute("DELETE FROM subnets WHERE id = ?1", [id])
            .map(drop)
            .map_err(db)
    }

    fn wire_links(&mut self, subnet_id: &str) -> Result<Vec<WireLink>> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT wire_id, detected, attached FROM subnet_wires WHERE subnet_id = ?1 ORDER BY wire_id")
            .map_err(db)?;
        let rows = stmt
            .query_map([subnet_id], |r| {
                Ok(WireLink {
                    wire_id: r.get(0)?,
                    detected: r.get::<_, i64>(1)? != 0,
                    attached: r.get::<_, i64>(2)? != 0,
                })
            })
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn wire_links_in_vcenter(&mut self, vcenter: &str) -> Result<Vec<(String, WireLink)>> {
        let mut stmt = self
            .tx
            .prepare_cached(
                "SELECT subnet_id, wire_id, detected, attached FROM subnet_wires
                 WHERE subnet_id IN (SELECT id FROM subnets WHERE vcenter = ?1)
                 ORDER BY subnet_id, wire_id",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([vcenter], |r| {
                Ok((
                    r.get(0)?,
                    WireLink {
                        wire_id: r.get(1)?,
                        detected: r.get::<_, i64>(2)? != 0,
                        attached: r.get::<_, i64>(3)? != 0,
                    },
                ))
            })
            .map_err(db)?;
        rows.map(|r| r.map_err(db)).collect()
    }

    fn put_wire_link(&mut self, subnet_id: &str, link: &WireLink) -> Result<()> {
        self.tx
            .execute(
                "INSERT OR REPLACE INTO subnet_wires (subnet_id, wire_id, detected, attached) VALUES (?1, ?2, ?3, ?4)",
                params![subnet_id, link.wire_id, link.detected, link.attached],
            )
            .map(drop)
            .map_err(db)
    }

    fn delete_wire_link(&mut self, subnet_id: &str, wire_id: &str) -> Result<()> {
        self.tx
            .execute(
                "DELETE FROM subnet_wires WHERE subnet_id = ?1 AND wire_id = ?2",
                [subnet_id, wire_id],
            )
            .map(drop)
            .map_err(db)
    }

    fn addresses(&mut self, subnet_id: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = ?1 ORDER BY ip"),
            [subnet_id],
        )
    }

    fn address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<Option<AddressRecord>> {
        Ok(self
            .address_query(
                &format!(
                    "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = ?1 AND ip = ?2"
                ),
                params![subnet_id, ip_column(ip)],
            )?
            .pop())
    }

    fn addresses_of_owner(
        &mut self,
        kind: OwnerKind,
        owner_id: &str,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE owner_kind = ?1 AND owner_id = ?2 ORDER BY subnet_id, ip"),
            [kind.as_str(), owner_id],
        )
    }

    fn addresses_of_kind(
        &mut self,
        subnet_id: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = ?1 AND owner_kind = ?2 ORDER BY ip"),
            [subnet_id, kind.as_str()],
        )
    }

    fn addresses_of_kind_in_vcenter(
        &mut self,
        vcenter: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses
                 WHERE subnet_id IN (SELECT id FROM subnets WHERE vcenter = ?1) AND owner_kind = ?2
                 ORDER BY subnet_id, ip"
            ),
            [vcenter, kind.as_str()],
        )
    }

    fn addresses_of_vm(&mut self, vm_uuid: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE vm_uuid = ?1 ORDER BY subnet_id, ip"
            ),
            [vm_uuid],
        )
    }

    fn insert_address(&mut self, a: &AddressRecord) -> Result<()> {
        self.tx
            .prepare_cached(&format!(
                "INSERT INTO addresses ({ADDRESS_COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ))
            .and_then(|mut stmt| {
                stmt.execute(params![
                    a.subnet_id,
                    ip_column(a.ip),
                    a.owner_kind.as_str(),
                    a.owner_id,
                    a.vm_uuid,
                    a.mac,
                    a.wire_id,
                    a.pending,
                    a.created_at,
                    a.description
                ])
            })
            .map(drop)
            .map_err(db)
    }

    fn delete_address(&mut self, subnet_id: &str, ip: IpAddr) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM addresses WHERE subnet_id = ?1 AND ip = ?2")
            .and_then(|mut s| s.execute(params![subnet_id, ip_column(ip)]))
            .map(drop)
            .map_err(db)
    }

    fn set_description(
        &mut self,
        subnet_id: &str,
        ip: IpAddr,
        description: Option<&str>,
    ) -> Result<()> {
        self.tx
            .execute(
                "UPDATE addresses SET description = ?3 WHERE subnet_id = ?1 AND ip = ?2",
                params![subnet_id, ip_column(ip), description],
            )
            .map(drop)
            .map_err(db)
    }

    fn run_covering(&mut self, subnet_id: &str, ip: Key) -> Result<Option<Range>> {
        let run = self
            .tx
            .prepare_cached(
                "SELECT start_ip, end_ip FROM held_runs WHERE subnet_id = ?1 AND start_ip <= ?2 ORDER BY start_ip DESC LIMIT 1",
            )
            .and_then(|mut s| {
                s.query_row(params![subnet_id, key_column(ip)], |r| {
                    Ok((r.get::<_, Vec<u8>>(0)?, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()
            })
            .map_err(db)?;
        let Some((start, end)) = run else {
            return Ok(None);
        };
        let run = Range {
            start: key_of_column(&start, "held_runs.start_ip")?,
            end: key_of_column(&end, "held_runs.end_ip")?,
        };
        Ok(Some(run).filter(|r| r.end >= ip))
    }

    fn insert_run(&mut self, subnet_id: &str, run: Range) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO held_runs (subnet_id, start_ip, end_ip) VALUES (?1, ?2, ?3)",
            )
            .and_then(|mut s| {
                s.execute(params![
                    subnet_id,
                    key_column(run.start),
                    key_column(run.end)
                ])
            })
            .map(drop)
            .map_err(db)
    }

    fn delete_run(&mut self, subnet_id: &str, start: Key) -> Result<()> {
        self.tx
            .prepare_cached("DELETE FROM held_runs WHERE subnet_id = ?1 AND start_ip = ?2")
            .and_then(|mut s| s.execute(params![subnet_id, key_column(start)]))
            .map(drop)
            .map_err(db)
    }
}
