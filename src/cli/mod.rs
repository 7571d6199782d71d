//! The binary as a command for people: when Terraform did not start it, it shows what the
//! provider sees in vCenter and what the IPAM store holds, with the provider's settings from
//! the same environment variables (or flags). Human output is a table; `--json` is for scripts
//! and stays stable.

mod audit;
mod table;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::provider::config::{self, RawSettings};
use crate::store::Store;
use crate::vsphere::client;
use crate::vsphere::inventory::{load_inventory_with_progress, LoadProgress};
use crate::vsphere::model::Inventory;
use crate::vsphere::wire;
use table::Table;

/// `--version`: the release version and the plugin protocol versions it serves.
static VERSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(vsphereipam_dist::version_text);

#[derive(Parser)]
#[command(
    name = "terraform-provider-vsphereipam",
    version = VERSION.as_str(),
    about = "IP address management for VMware vSphere. Terraform starts this binary as its \
             plugin; run by a person, it shows what the provider sees and what the IPAM holds."
)]
struct Cli {
    /// vCenter server (host[:port]).
    #[arg(long, env = "VSPHERE_SERVER", global = true)]
    vsphere_server: Option<String>,
    /// vCenter user.
    #[arg(long, env = "VSPHERE_USER", global = true)]
    user: Option<String>,
    /// vCenter password (better in the environment than on the command line).
    #[arg(long, env = "VSPHERE_PASSWORD", hide_env_values = true, global = true)]
    password: Option<String>,
    /// Accept an untrusted vCenter certificate.
    #[arg(long, global = true)]
    allow_unverified_ssl: bool,
    /// auto, soap or json.
    #[arg(long, global = true)]
    api_transport: Option<String>,
    /// IPAM store URL (sqlite:///path or postgres://...).
    #[arg(long, env = "VSPHEREIPAM_STORE", hide_env_values = true, global = true)]
    store: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Wires, hosts and VMs as the provider sees them (one inventory snapshot).
    Inventory {
        #[arg(long)]
        json: bool,
    },
    /// What the IPAM store holds.
    Ipam {
        #[command(subcommand)]
        command: IpamCommand,
    },
}

#[derive(Subcommand)]
enum IpamCommand {
    /// Every subnet with its size and how many addresses are held, observed, reserved, free.
    Subnets {
        #[arg(long)]
        json: bool,
    },
    /// Every held address of a subnet, with its owner, VM and MAC.
    Addresses {
        #[arg(long)]
        subnet: String,
        #[arg(long)]
        json: bool,
    },
    /// Problems an operator must fix; exits with 1 when there are any.
    Audit {
        #[arg(long)]
        json: bool,
    },
}

/// True when Terraform (or another go-plugin host) started the binary.
pub fn started_by_terraform() -> bool {
    std::env::var_os("TF_PLUGIN_MAGIC_COOKIE").is_some()
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    crate::logging::init_cli();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => return fail(format!("cannot start: {e}")),
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => fail(format!("{e:#}")),
    }
}

fn fail(message: String) -> ExitCode {
    // Errors may quote a store URL or DSN as the user gave it.
    eprintln!("error: {}", crate::redact::redact(&message));
    ExitCode::from(2)
}

fn raw(cli: &Cli) -> RawSettings {
    RawSettings {
        vsphere_server: cli.vsphere_server.clone(),
        user: cli.user.clone(),
        password: cli.password.clone(),
        allow_unverified_ssl: cli.allow_unverified_ssl.then_some(true),
        api_transport: cli.api_transport.clone(),
        store: cli.store.clone(),
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok()
}

fn setting_errors(errors: Vec<config::SettingError>) -> anyhow::Error {
    let lines: Vec<String> = errors
        .into_iter()
        .map(|e| format!("{}: {}", e.summary, e.detail))
        .collect();
    anyhow::anyhow!(lines.join("\n"))
}

async fn open_store(cli: &Cli) -> anyhow::Result<Store> {
    let url = config::resolve_store(cli.store.clone(), env).map_err(|e| setting_errors(vec![e]))?;
    let store = tokio::task::spawn_blocking(move || Store::open(&url)).await??;
    Ok(store)
}

/// Loads the inventory, with a spinner counting the objects read on a terminal and nothing on a
/// pipe. vCenter does not tell the total before the last page, so there is no bar to fill.
async fn load_inventory(cli: &Cli) -> anyhow::Result<Arc<Inventory>> {
    let settings = config::resolve(raw(cli), env).map_err(setting_errors)?;
    let server = settings.connect.server.clone();
    let progress = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        bar.set_message(format!("connecting to {server}"));
        bar.enable_steady_tick(std::time::Duration::from_millis(120));
        bar
    });
    let client = client::connect(&settings.connect).await?;
    if let Some(bar) = &progress {
        bar.set_message(format!("loading the inventory of {server}"));
    }
    let on_page = |p: LoadProgress| {
        if let Some(bar) = &progress {
            bar.set_message(format!(
                "loading the inventory of {server}: {} objects read ({} {})",
                p.objects,
                p.pages,
                if p.pages == 1 { "page" } else { "pages" }
            ));
        }
    };
    let inventory = load_inventory_with_progress(&client, &on_page).await?;
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    Ok(Arc::new(inventory))
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match &cli.command {
        Command::Inventory { json } => {
            let inventory = load_inventory(&cli).await?;
            if *json {
                print_json(&*inventory)?;
            } else {
                print_inventory(&inventory);
            }
        }
        Command::Ipam { command } => match command {
            IpamCommand::Subnets { json } => {
                let store = open_store(&cli).await?;
                let rows = store.blocking(subnet_usage).await?;
                if *json {
                    print_json(&rows)?;
                } else {
                    let mut t = Table::new([
                        "id", "name", "cidr", "range", "wire", "size", "held", "observed",
                        "reserved", "free",
                    ]);
                    for r in &rows {
                        t.row([
                            r.id.clone(),
                            r.name.clone(),
                            r.cidr.clone(),
                            r.range.clone(),
                            r.wire_id.clone(),
                            readable_count(r.size),
                            r.held.to_string(),
                            r.observed.to_string(),
                            readable_count(r.reserved),
                            readable_count(r.free),
                        ]);
                    }
                    print!("{t}");
                }
            }
            IpamCommand::Addresses { subnet, json } => {
                let store = open_store(&cli).await?;
                let id = subnet.clone();
                let addresses = store.blocking(move |s| s.addresses(&id)).await?;
                if *json {
                    let rows: Vec<AddressRow> = addresses.iter().map(AddressRow::from).collect();
                    print_json(&rows)?;
                } else {
                    let mut t = Table::new(["ip", "owner", "owner id", "vm", "mac", "pending"]);
                    for a in &addresses {
                        t.row([
                            a.ip.to_string(),
                            a.owner_kind.as_str().to_string(),
                            a.owner_id.clone(),
                            a.vm_uuid.clone().unwrap_or_default(),
                            a.mac.clone().unwrap_or_default(),
                            if a.pending { "yes" } else { "" }.to_string(),
                        ]);
                    }
                    print!("{t}");
                }
            }
            IpamCommand::Audit { json } => {
                let store = open_store(&cli).await?;
                let inventory = load_inventory(&cli).await?;
                let inv = inventory.clone();
                let problems = store.blocking(move |s| audit::audit(s, &inv)).await?;
                if *json {
                    print_json(&problems)?;
                } else if problems.is_empty() {
                    println!("no problems found");
                } else {
                    let mut t = Table::new(["problem", "address", "detail"]);
                    for p in &problems {
                        t.row([p.kind.to_string(), p.ip.clone(), p.detail.clone()]);
                    }
                    print!("{t}");
                }
                if !problems.is_empty() {
                    return Ok(ExitCode::from(1));
                }
            }
        },
    }
    Ok(ExitCode::SUCCESS)
}

fn print_inventory(inventory: &Inventory) {
    let mut wires = Table::new([
        "wire id",
        "port group",
        "type",
        "vlan",
        "switch",
        "hosts",
        "vm ips",
    ]);
    for pg in inventory.portgroups.iter().filter(|pg| !pg.uplink) {
        let ips: Vec<String> = wire::vm_ips_on(inventory, &pg.moref)
            .iter()
            .map(|ip| ip.to_string())
            .collect();
        wires.row([
            wire::wire_id(inventory, &pg.moref),
            pg.name.clone(),
            pg.kind.as_str().to_string(),
            pg.vlan.as_number().to_string(),
            pg.switch_name.clone(),
            pg.host_ids.len().to_string(),
            ips.join(", "),
        ]);
    }
    println!("WIRES\n{wires}");
    let mut hosts = Table::new(["host", "name", "datacenter", "state", "vmkernel ips"]);
    for h in &inventory.hosts {
        let ips: Vec<String> = h
            .vmknics
            .iter()
            .filter_map(|n| n.ip.map(|ip| format!("{} {ip}", n.device)))
            .collect();
        hosts.row([
            h.moref.clone(),
            h.name.clone(),
            h.datacenter.clone(),
            h.connection_state.clone(),
            ips.join(", "),
        ]);
    }
    println!("HOSTS\n{hosts}");
    let pg_name = |moref: &Option<String>| {
        moref
            .as_deref()
            .and_then(|m| inventory.portgroups.iter().find(|pg| pg.moref == m))
            .map_or_else(|| "-".to_string(), |pg| pg.name.clone())
    };
    let mut vms = Table::new([
        "vm",
        "uuid",
        "power",
        "host",
        "mac",
        "port group",
        "tools ips",
    ]);
    for vm in inventory.vms.iter().filter(|vm| !vm.template) {
        for nic in &vm.nics {
            let ips: Vec<String> = vm
                .guest_ips
                .get(&nic.mac)
                .map(|ips| ips.iter().map(|ip| ip.to_string()).collect())
                .unwrap_or_default();
            vms.row([
                vm.name.clone(),
                vm.uuid.clone(),
                vm.power_state.clone(),
                vm.host.clone().unwrap_or_default(),
                nic.mac.clone(),
                pg_name(&nic.portgroup),
                ips.join(", "),
            ]);
        }
    }
    print!("VMS\n{vms}");
}

/// A count for the table: exact below 2^32 (every IPv4 count), else its first three digits
/// and the nearest power of two, as `1.84e19 (~2^64)`: twenty-digit numbers of an IPv6 /64 or /48 are
/// not readable at a glance, and `--json` keeps the exact figure.
fn readable_count(n: u128) -> String {
    if n < 1 << 32 {
        return n.to_string();
    }
    let digits = n.to_string();
    let exponent = digits.len() - 1;
    let log2 = (n as f64).log2();
    let power = if n.is_power_of_two() {
        format!("2^{}", n.trailing_zeros())
    } else {
        format!("~2^{}", log2.round())
    };
    format!("{}.{}e{exponent} ({power})", &digits[..1], &digits[1..3])
}

#[derive(Serialize)]
struct SubnetUsage {
    id: String,
    name: String,
    vcenter: String,
    cidr: String,
    range: String,
    wire_id: String,
    additional_wire_ids: Vec<String>,
    /// Exact counts (an IPv6 /64 has 2^64 addresses; JSON numbers have no size limit, but
    /// readers that parse them as doubles lose digits beyond 2^53).
    size: u128,
    /// Addresses owned by resources.
    held: u64,
    /// Addresses vCenter reports in use that no resource owns.
    observed: u64,
    /// Gateway and reserved ranges inside the allocatable range.
    reserved: u128,
    free: u128,
}

/// Counts of every subnet, read in one transaction so they agree with each other.
fn subnet_usage(store: &Store) -> crate::store::Result<Vec<SubnetUsage>> {
    Ok(store
        .subnet_usages(None)?
        .into_iter()
        .map(|u| {
            let subnet = &u.view.subnet;
            SubnetUsage {
                additional_wire_ids: u.view.additional_wire_ids(),
                size: u.counts.size,
                held: u.counts.held,
                observed: u.counts.observed,
                reserved: u.counts.reserved,
                free: u.counts.free,
                range: subnet.spec.allocatable().to_string(),
                cidr: subnet.spec.cidr.to_string(),
                wire_id: subnet.wire_id.clone(),
                vcenter: subnet.vcenter.clone(),
                name: subnet.name.clone(),
                id: subnet.id.clone(),
            }
        })
        .collect())
}

#[derive(Serialize)]
struct AddressRow {
    subnet_id: String,
    ip: String,
    owner_kind: &'static str,
    owner_id: String,
    vm_uuid: Option<String>,
    mac: Option<String>,
    wire_id: Option<String>,
    pending: bool,
    description: Option<String>,
    created_at: i64,
}

impl From<&crate::store::AddressRecord> for AddressRow {
    fn from(a: &crate::store::AddressRecord) -> Self {
        AddressRow {
            subnet_id: a.subnet_id.clone(),
            ip: a.ip.to_string(),
            owner_kind: a.owner_kind.as_str(),
            owner_id: a.owner_id.clone(),
            vm_uuid: a.vm_uuid.clone(),
            mac: a.mac.clone(),
            wire_id: a.wire_id.clone(),
            pending: a.pending,
            description: a.description.clone(),
            created_at: a.created_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::readable_count;

    #[test]
    fn counts_beyond_ipv4_print_readably() {
        assert_eq!(readable_count(254), "254");
        assert_eq!(readable_count(16_777_214), "16777214");
        assert_eq!(readable_count((1 << 32) - 1), "4294967295");
        assert_eq!(readable_count(1 << 64), "1.84e19 (2^64)");
        assert_eq!(readable_count((1 << 64) - 1), "1.84e19 (~2^64)");
        assert_eq!(readable_count((1 << 80) - 1), "1.20e24 (~2^80)");
        assert_eq!(readable_count(u128::MAX), "3.40e38 (~2^128)");
    }
}
