//! The shared store: PostgreSQL, for teams whose Terraform runs on many machines.
//!
//! Same tables and the same [`Tx`] primitives as the SQLite backend; the IPAM rules stay in
//! `ops`. Locking (see ARCHITECTURE.md): transactions run at READ COMMITTED, and every
//! operation that reads-then-writes a subnet first takes a transaction-scoped advisory lock
//! on that subnet (`lock_subnet`), or on the vCenter for subnet range changes
//! (`lock_vcenter`). Allocations in different subnets run in parallel; two in the same subnet
//! queue on the lock, and each statement after it sees what the previous holder committed.
//! A deadlock or serialization failure reported by the server is retried.

use std::net::Ipv4Addr;
use std::sync::Mutex;

use ipnet::Ipv4Net;
use postgres::error::SqlState;
use postgres::{Client, Config, Row};

use super::{AddressRecord, Backend, OwnerKind, Result, StoreError, SubnetRecord, Tx, WireLink};
use crate::ipam::ranges::Range;
use crate::ipam::subnet::{Policy, SubnetSpec};
use crate::logging::redact_url;

/// Schema versions, applied in order; never edit a released one, add the next.
const MIGRATIONS: &[&str] = &[
    r#"
CREATE TABLE subnets (
    id          TEXT PRIMARY KEY,
    vcenter     TEXT NOT NULL,
    name        TEXT NOT NULL,
    wire_id     TEXT NOT NULL,
    cidr        TEXT NOT NULL,
    start_ip    BIGINT NOT NULL,
    end_ip      BIGINT NOT NULL,
    gateway     BIGINT,
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
    detected  BOOLEAN NOT NULL,
    attached  BOOLEAN NOT NULL,
    PRIMARY KEY (subnet_id, wire_id)
);
CREATE TABLE addresses (
    subnet_id  TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    ip         BIGINT NOT NULL,
    owner_kind TEXT NOT NULL,
    owner_id   TEXT NOT NULL,
    vm_uuid    TEXT,
    mac        TEXT,
    wire_id    TEXT,
    pending    BOOLEAN NOT NULL,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (subnet_id, ip)
);
CREATE INDEX addresses_owner ON addresses (owner_kind, owner_id);
CREATE TABLE held_runs (
    subnet_id TEXT NOT NULL REFERENCES subnets (id) ON DELETE CASCADE,
    start_ip  BIGINT NOT NULL,
    end_ip    BIGINT NOT NULL,
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
];

/// Advisory lock key that serializes migrations of one database.
const MIGRATION_LOCK: i64 = 0x7653_7068_6970_616d; // "vsphipam"

/// How often a transaction the server aborted (deadlock, serialization) is run again.
const RETRIES: usize = 5;

pub struct PostgresBackend {
    url: String,
    config: Config,
    client: Mutex<Option<Client>>,
}

fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn db(e: postgres::Error) -> StoreError {
    pg_error(&e)
}

/// A database error with the server's own message, never the connection string.
fn pg_error(e: &postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => unavailable(format!("PostgreSQL: {} ({})", d.message(), d.code().code())),
        None => unavailable(format!("PostgreSQL: {e}")),
    }
}

fn retryable(e: &postgres::Error) -> bool {
    matches!(
        e.code(),
        Some(&SqlState::T_R_DEADLOCK_DETECTED) | Some(&SqlState::T_R_SERIALIZATION_FAILURE)
    )
}

fn tls() -> Result<tokio_postgres_rustls::MakeRustlsConnect> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        // A certificate the platform store holds but rustls cannot parse is skipped, as
        // browsers do.
        let _ = roots.add(cert);
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(unavailable)?
    .with_root_certificates(roots)
    .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

impl PostgresBackend {
    /// Connects to `url` (`postgres://user:password@host:port/db?sslmode=require`) and applies
    /// the migrations.
    pub fn open(url: &str) -> Result<Self> {
        let config: Config = url
            .parse()
            .map_err(|e| unavailable(format!("invalid PostgreSQL URL {}: {e}", redact_url(url))))?;
        let backend = PostgresBackend {
            url: url.to_string(),
            config,
            client: Mutex::new(None),
        };
        backend.migrate().map_err(|e| backend.located(e))?;
        Ok(backend)
    }

    fn connect(&self) -> Result<Client> {
        self.config
            .connect(tls()?)
            .map_err(|e| unavailable(format!("cannot connect: {}", db(e))))
    }

    /// Names the store (without its password) in an unavailability error.
    fn located(&self, e: StoreError) -> StoreError {
        match e {
            StoreError::Unavailable(reason) => {
                StoreError::Unavailable(format!("{}: {reason}", redact_url(&self.url)))
            }
            other => other,
        }
    }

    /// Runs `f` on a live connection, connecting (again) when there is none or the server
    /// closed it, e.g. after a restart.
    fn with_client<R>(&self, f: impl FnOnce(&mut Client) -> Result<R>) -> Result<R> {
        let mut slot = self.client.lock().map_err(unavailable)?;
        if slot.as_ref().is_none_or(|c| c.is_closed()) {
            *slot = Some(self.connect()?);
        }
        let client = slot.as_mut().expect("connected above");
        let out = f(client);
        if client.is_closed() {
            *slot = None;
        }
        out
    }

    fn migrate(&self) -> Result<()> {
        self.with_client(|client| {
            let mut tx = client.transaction().map_err(db)?;
            // Several processes may start on a new database at once: one migrates, the others
            // wait here and then find nothing left to do.
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .map_err(db)?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)",
            )
            .map_err(db)?;
            let current: i32 = tx
                .query_one("SELECT COALESCE(MAX(version), 0) FROM schema_version", &[])
                .map_err(db)?
                .get(0);
            if current as usize > MIGRATIONS.len() {
                return Err(unavailable(format!(
                    "the database has schema version {current}, newer than this provider knows \
                     ({}); upgrade the provider",
                    MIGRATIONS.len()
                )));
            }
            for (i, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
                tx.batch_execute(sql).map_err(db)?;
                tx.execute(
                    "INSERT INTO schema_version (version) VALUES ($1)",
                    &[&(i as i32 + 1)],
                )
                .map_err(db)?;
            }
            tx.commit().map_err(db)
        })
    }
}

impl Backend for PostgresBackend {
    fn with_tx(&self, commit: bool, f: &mut dyn FnMut(&mut dyn Tx) -> Result<()>) -> Result<()> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut lost_before_work = false;
            let outcome = self.with_client(|client| {
                let mut tx = client.transaction().map_err(db)?;
                let mut ptx = PgTx {
                    tx: &mut tx,
                    aborted: None,
                    done: 0,
                };
                let outcome = f(&mut ptx);
                let (aborted, done) = (ptx.aborted.take(), ptx.done);
                match (outcome, aborted) {
                    (Ok(()), _) if !commit => tx.rollback().map_err(db),
                    (Ok(()), _) => tx.commit().map_err(|e| {
                        lost_before_work = retryable(&e);
                        db(e)
                    }),
                    (Err(e), Some(cause)) => {
                        // A deadlock victim, or a connection that was already gone when the
                        // transaction began (nothing ran): safe to run again.
                        lost_before_work = retryable(&cause) || (done == 0 && cause.is_closed());
                        Err(e)
                    }
                    (Err(e), None) => Err(e),
                }
            });
            match outcome {
                Err(_) if lost_before_work && attempt < RETRIES => continue,
                other => return other.map_err(|e| self.located(e)),
            }
        }
    }

    fn describe(&self) -> String {
        redact_url(&self.url)
    }
}

struct PgTx<'t, 'c> {
    tx: &'t mut postgres::Transaction<'c>,
    /// The server error that failed the transaction, kept to decide on a retry.
    aborted: Option<postgres::Error>,
    /// Statements that succeeded.
    done: usize,
}

const SUBNET_COLUMNS: &str =
    "id, vcenter, name, wire_id, cidr, start_ip, end_ip, gateway, dns_servers, domain, vlan_id, policy, reserved";
const ADDRESS_COLUMNS: &str =
    "subnet_id, ip, owner_kind, owner_id, vm_uuid, mac, wire_id, pending, created_at, description";

fn ip_of(v: i64) -> Ipv4Addr {
    Ipv4Addr::from(v as u32)
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

fn subnet_from_row(row: &Row) -> Result<SubnetRecord> {
    let bad = |what: &str| StoreError::Corrupt(format!("subnet column {what}"));
    let cidr: String = row.get(4);
    let dns: String = row.get(8);
    let policy: String = row.get(11);
    let reserved: String = row.get(12);
    Ok(SubnetRecord {
        id: row.get(0),
        vcenter: row.get(1),
        name: row.get(2),
        wire_id: row.get(3),
        domain: row.get(9),
        spec: SubnetSpec {
            cidr: cidr.parse::<Ipv4Net>().map_err(|_| bad("cidr"))?,
            start: ip_of(row.get(5)),
            end: ip_of(row.get(6)),
            gateway: row.get::<_, Option<i64>>(7).map(ip_of),
            dns_servers: split(&dns)
                .map(|s| s.parse().map_err(|_| bad("dns_servers")))
                .collect::<Result<_>>()?,
            vlan_id: row.get::<_, Option<i32>>(10).map(|v| v as u16),
            policy: policy.parse::<Policy>().map_err(|_| bad("policy"))?,
            reserved: split(&reserved)
                .map(|s| s.parse().map_err(|_| bad("reserved")))
                .collect::<Result<_>>()?,
        },
    })
}

fn address_from_row(row: &Row) -> Result<AddressRecord> {
    let kind: String = row.get(2);
    Ok(AddressRecord {
        subnet_id: row.get(0),
        ip: ip_of(row.get(1)),
        owner_kind: kind.parse::<OwnerKind>()?,
        owner_id: row.get(3),
        vm_uuid: row.get(4),
        mac: row.get(5),
        wire_id: row.get(6),
        pending: row.get(7),
        created_at: row.get(8),
        description: row.get(9),
    })
}

type Params<'p> = [&'p (dyn postgres::types::ToSql + Sync)];

impl PgTx<'_, '_> {
    fn query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<Row>> {
        match self.tx.query(sql, params) {
            Ok(rows) => {
                self.done += 1;
                Ok(rows)
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    fn execute(&mut self, sql: &str, params: &Params<'_>) -> Result<()> {
        match self.tx.execute(sql, params) {
            Ok(_) => {
                self.done += 1;
                Ok(())
            }
            Err(e) => Err(self.abort(e)),
        }
    }

    /// The error for the caller; the original is kept for the retry decision.
    fn abort(&mut self, e: postgres::Error) -> StoreError {
        let out = pg_error(&e);
        self.aborted = Some(e);
        out
    }

    fn subnet_query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<SubnetRecord>> {
        self.query(sql, params)?
            .iter()
            .map(subnet_from_row)
            .collect()
    }

    fn address_query(&mut self, sql: &str, params: &Params<'_>) -> Result<Vec<AddressRecord>> {
        self.query(sql, params)?
            .iter()
            .map(address_from_row)
            .collect()
    }

    fn advisory_lock(&mut self, scope: &str, key: &str) -> Result<()> {
        let key = format!("vsphereipam/{scope}/{key}");
        self.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            &[&key],
        )
    }
}

impl Tx for PgTx<'_, '_> {
    fn subnets(&mut self, vcenter: Option<&str>) -> Result<Vec<SubnetRecord>> {
        match vcenter {
            Some(vc) => self.subnet_query(
                &format!(
                    "SELECT {SUBNET_COLUMNS} FROM subnets WHERE vcenter = $1 ORDER BY start_ip"
                ),
                &[&vc],
            ),
            None => self.subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets ORDER BY start_ip"),
                &[],
            ),
        }
    }

    fn subnet(&mut self, id: &str) -> Result<Option<SubnetRecord>> {
        Ok(self
            .subnet_query(
                &format!("SELECT {SUBNET_COLUMNS} FROM subnets WHERE id = $1"),
                &[&id],
            )?
            .pop())
    }

    fn lock_subnet(&mut self, id: &str) -> Result<()> {
        self.advisory_lock("subnet", id)
    }

    fn lock_vcenter(&mut self, vcenter: &str) -> Result<()> {
        self.advisory_lock("vcenter", vcenter)
    }

    fn put_subnet(&mut self, s: &SubnetRecord) -> Result<()> {
        let spec = &s.spec;
        self.execute(
            &format!(
                "INSERT INTO subnets ({SUBNET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                 ON CONFLICT (id) DO UPDATE SET vcenter = excluded.vcenter, name = excluded.name,
                 wire_id = excluded.wire_id, cidr = excluded.cidr, start_ip = excluded.start_ip,
                 end_ip = excluded.end_ip, gateway = excluded.gateway, dns_servers = excluded.dns_servers,
                 domain = excluded.domain, vlan_id = excluded.vlan_id, policy = excluded.policy,
                 reserved = excluded.reserved"
            ),
            &[
                &s.id,
                &s.vcenter,
                &s.name,
                &s.wire_id,
                &spec.cidr.to_string(),
                &i64::from(u32::from(spec.start)),
                &i64::from(u32::from(spec.end)),
                &spec.gateway.map(|g| i64::from(u32::from(g))),
                &join(&spec.dns_servers),
                &s.domain,
                &spec.vlan_id.map(i32::from),
                &spec.policy.as_str(),
                &join(&spec.reserved),
            ],
        )
    }

    fn delete_subnet(&mut self, id: &str) -> Result<()> {
        self.execute("DELETE FROM subnets WHERE id = $1", &[&id])
    }

    fn wire_links(&mut self, subnet_id: &str) -> Result<Vec<WireLink>> {
        Ok(self
            .query(
                "SELECT wire_id, detected, attached FROM subnet_wires WHERE subnet_id = $1 ORDER BY wire_id",
                &[&subnet_id],
            )?
            .iter()
            .map(|r| WireLink {
                wire_id: r.get(0),
                detected: r.get(1),
                attached: r.get(2),
            })
            .collect())
    }

    fn put_wire_link(&mut self, subnet_id: &str, link: &WireLink) -> Result<()> {
        self.execute(
            "INSERT INTO subnet_wires (subnet_id, wire_id, detected, attached) VALUES ($1, $2, $3, $4)
             ON CONFLICT (subnet_id, wire_id) DO UPDATE SET detected = excluded.detected, attached = excluded.attached",
            &[&subnet_id, &link.wire_id, &link.detected, &link.attached],
        )
    }

    fn delete_wire_link(&mut self, subnet_id: &str, wire_id: &str) -> Result<()> {
        self.execute(
            "DELETE FROM subnet_wires WHERE subnet_id = $1 AND wire_id = $2",
            &[&subnet_id, &wire_id],
        )
    }

    fn addresses(&mut self, subnet_id: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 ORDER BY ip"),
            &[&subnet_id],
        )
    }

    fn address(&mut self, subnet_id: &str, ip: Ipv4Addr) -> Result<Option<AddressRecord>> {
        Ok(self
            .address_query(
                &format!(
                    "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 AND ip = $2"
                ),
                &[&subnet_id, &i64::from(u32::from(ip))],
            )?
            .pop())
    }

    fn addresses_of_owner(
        &mut self,
        kind: OwnerKind,
        owner_id: &str,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE owner_kind = $1 AND owner_id = $2 ORDER BY subnet_id, ip"),
            &[&kind.as_str(), &owner_id],
        )
    }

    fn addresses_of_kind(
        &mut self,
        subnet_id: &str,
        kind: OwnerKind,
    ) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!("SELECT {ADDRESS_COLUMNS} FROM addresses WHERE subnet_id = $1 AND owner_kind = $2 ORDER BY ip"),
            &[&subnet_id, &kind.as_str()],
        )
    }

    fn addresses_of_vm(&mut self, vm_uuid: &str) -> Result<Vec<AddressRecord>> {
        self.address_query(
            &format!(
                "SELECT {ADDRESS_COLUMNS} FROM addresses WHERE vm_uuid = $1 ORDER BY subnet_id, ip"
            ),
            &[&vm_uuid],
        )
    }

    fn insert_address(&mut self, a: &AddressRecord) -> Result<()> {
        self.execute(
            &format!(
                "INSERT INTO addresses ({ADDRESS_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
            ),
            &[
                &a.subnet_id,
                &i64::from(u32::from(a.ip)),
                &a.owner_kind.as_str(),
                &a.owner_id,
                &a.vm_uuid,
                &a.mac,
                &a.wire_id,
                &a.pending,
                &a.created_at,
                &a.description,
            ],
        )
    }

    fn delete_address(&mut self, subnet_id: &str, ip: Ipv4Addr) -> Result<()> {
        self.execute(
            "DELETE FROM addresses WHERE subnet_id = $1 AND ip = $2",
            &[&subnet_id, &i64::from(u32::from(ip))],
        )
    }

    fn set_description(
        &mut self,
        subnet_id: &str,
        ip: Ipv4Addr,
        description: Option<&str>,
    ) -> Result<()> {
        self.execute(
            "UPDATE addresses SET description = $3 WHERE subnet_id = $1 AND ip = $2",
            &[&subnet_id, &i64::from(u32::from(ip)), &description],
        )
    }

    fn run_covering(&mut self, subnet_id: &str, ip: u32) -> Result<Option<Range>> {
        let rows = self.query(
            "SELECT start_ip, end_ip FROM held_runs WHERE subnet_id = $1 AND start_ip <= $2 ORDER BY start_ip DESC LIMIT 1",
            &[&subnet_id, &i64::from(ip)],
        )?;
        Ok(rows
            .first()
            .map(|r| Range {
                start: r.get::<_, i64>(0) as u32,
                end: r.get::<_, i64>(1) as u32,
            })
            .filter(|r| r.end >= ip))
    }

    fn insert_run(&mut self, subnet_id: &str, run: Range) -> Result<()> {
        self.execute(
            "INSERT INTO held_runs (subnet_id, start_ip, end_ip) VALUES ($1, $2, $3)",
            &[&subnet_id, &i64::from(run.start), &i64::from(run.end)],
        )
    }

    fn delete_run(&mut self, subnet_id: &str, start: u32) -> Result<()> {
        self.execute(
            "DELETE FROM held_runs WHERE subnet_id = $1 AND start_ip = $2",
            &[&subnet_id, &i64::from(start)],
        )
    }
}
