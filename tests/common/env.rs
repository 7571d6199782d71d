//! A test environment for the IPAM resources: the simulator, an embedded store of the test's
//! own, and Terraform working directories wired to both.

use super::sim::Sim;
use super::terraform::{header, Terraform, Workdir};
use vsphereipam::store::Store;

/// A simulator, a store of its own, and Terraform working directories configured for both
/// through the environment, each starting with `preamble` (data sources the bodies use).
pub struct Env<'s> {
    pub sim: &'s Sim,
    preamble: &'static str,
    store_dir: tempfile::TempDir,
    /// A store URL other than the default SQLite file, e.g. a PostgreSQL database.
    store: Option<String>,
}

impl<'s> Env<'s> {
    pub fn new(sim: &'s Sim, preamble: &'static str) -> Self {
        Env {
            sim,
            preamble,
            store_dir: tempfile::tempdir().unwrap(),
            store: None,
        }
    }
    /// The same, on the store `url`.
    pub fn with_store(sim: &'s Sim, preamble: &'static str, url: &str) -> Self {
        Env {
            store: Some(url.to_string()),
            ..Env::new(sim, preamble)
        }
    }
    pub fn store_url(&self) -> String {
        if let Some(url) = &self.store {
            return url.clone();
        }
        format!(
            "sqlite://{}",
            self.store_dir.path().join("ipam.db").display()
        )
    }
    /// The whole main.tf for `body`.
    pub fn config(&self, body: &str) -> String {
        format!(
            "{}\nprovider \"vsphereipam\" {{}}\n{}\n{body}",
            header(),
            self.preamble
        )
    }
    pub fn workdir(&self, tf: &Terraform, body: &str) -> Workdir {
        Workdir::new(tf, &self.config(body))
            .env("VSPHERE_SERVER", &self.sim.server())
            .env("VSPHERE_USER", &self.sim.info.user)
            .env("VSPHERE_PASSWORD", &self.sim.info.password)
            .env("VSPHERE_ALLOW_UNVERIFIED_SSL", "true")
            .env("VSPHEREIPAM_STORE", &self.store_url())
    }
    pub fn store(&self) -> Store {
        Store::open(&self.store_url()).unwrap()
    }
    /// Everything the store holds: each subnet, then its records as `ip kind owner mac
    /// pending` (observed ones included), to compare before and after a run that must not
    /// write.
    pub fn store_listing(&self) -> Vec<String> {
        let store = self.store();
        let mut out = Vec::new();
        for subnet in store.subnets(None).unwrap() {
            out.push(format!("subnet {} {}", subnet.id, subnet.name));
            for a in store.addresses(&subnet.id).unwrap() {
                out.push(format!(
                    "  {} {:?} {} {:?} {}",
                    a.ip, a.owner_kind, a.owner_id, a.mac, a.pending
                ));
            }
        }
        out
    }
    pub fn wire_id(&self, name: &str) -> String {
        let pg = self
            .sim
            .manifest()
            .portgroups
            .iter()
            .find(|p| p.name == name)
            .unwrap();
        format!("{}/{}", self.sim.info.instance_uuid, pg.moref)
    }
}
