//! Guest customization of a new VM: the plain inputs (Linux prep or Windows sysprep, whose
//! `Debug` leaves every secret out) and the vim25 `CustomizationSpec` built from them, one
//! adapter mapping per NIC, matched by its new MAC: its fixed IPv4 address (DHCP on an
//! IPv6-only NIC) and, for IPv6, `ipV6Spec` with the fixed address, prefix and gateway.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use vim_rs::types::structs::{
    CustomizationAdapterMapping, CustomizationDhcpIpGenerator, CustomizationFixedIp,
    CustomizationFixedIpV6, CustomizationFixedName, CustomizationGlobalIpSettings,
    CustomizationGuiRunOnce, CustomizationGuiUnattended, CustomizationIdentification,
    CustomizationIpSettings, CustomizationIpSettingsIpV6AddressSpec, CustomizationLinuxPrep,
    CustomizationPassword, CustomizationSpec, CustomizationSysprep, CustomizationUserData,
    CustomizationWinOptions,
};
use vim_rs::types::traits::{
    CustomizationIdentitySettingsTrait, CustomizationIpGeneratorTrait,
    CustomizationIpV6GeneratorTrait, CustomizationOptionsTrait,
};

use super::CreateVm;

/// How the guest operating system is customized, with the computer's name in
/// [`CreateVm::hostname`]. `Debug` leaves every secret out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GuestFamily {
    Linux(LinuxPrep),
    Windows(Sysprep),
}

/// Linux customization (`CustomizationLinuxPrep`).
#[derive(Clone, PartialEq, Eq)]
pub struct LinuxPrep {
    /// DNS domain of the host ("example.com"); must not be empty.
    pub domain: String,
    /// tz database name ("Europe/Berlin"); `None` leaves the template's.
    pub time_zone: Option<String>,
    /// Whether the hardware clock is in UTC; `None` leaves the template's.
    pub hw_clock_utc: Option<bool>,
    /// Customization script run in the guest (before and after customization).
    pub script_text: Option<String>,
}

/// Windows customization (`CustomizationSysprep`).
#[derive(Clone, PartialEq, Eq)]
pub struct Sysprep {
    /// The new Administrator password, sent as plain text (never empty: a blank password is
    /// refused).
    pub admin_password: String,
    pub identity: WindowsIdentity,
    /// Registered owner.
    pub full_name: String,
    /// Registered organization.
    pub organization_name: String,
    /// Windows product key; `None` sends none.
    pub product_key: Option<String>,
    /// Microsoft time zone index (85 is GMT Standard Time).
    pub time_zone: i32,
    pub auto_logon: bool,
    /// Times Administrator is logged on automatically when `auto_logon` (at least 1).
    pub auto_logon_count: i32,
    /// Commands run at the first logon (`guiRunOnce`).
    pub run_once: Vec<String>,
}

/// What a Windows guest joins.
#[derive(Clone, PartialEq, Eq)]
pub enum WindowsIdentity {
    Workgroup(String),
    Domain {
        domain: String,
        user: String,
        password: String,
        /// Organizational unit for the computer account ("OU=web,DC=corp,DC=example").
        ou: Option<String>,
    },
}

/// Stands for a secret in `Debug` output.
const REDACTED: &str = "<redacted>";

impl fmt::Debug for LinuxPrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A script may carry credentials: only its size is shown.
        f.debug_struct("LinuxPrep")
            .field("domain", &self.domain)
            .field("time_zone", &self.time_zone)
            .field("hw_clock_utc", &self.hw_clock_utc)
            .field(
                "script_text",
                &self
                    .script_text
                    .as_ref()
                    .map(|s| format!("<{} bytes>", s.len())),
            )
            .finish()
    }
}

impl fmt::Debug for Sysprep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sysprep")
            .field("admin_password", &REDACTED)
            .field("identity", &self.identity)
            .field("full_name", &self.full_name)
            .field("organization_name", &self.organization_name)
            .field("product_key", &self.product_key.as_ref().map(|_| REDACTED))
            .field("time_zone", &self.time_zone)
            .field("auto_logon", &self.auto_logon)
            .field("auto_logon_count", &self.auto_logon_count)
            .field("run_once", &format!("<{} commands>", self.run_once.len()))
            .finish()
    }
}

impl fmt::Debug for WindowsIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowsIdentity::Workgroup(w) => f.debug_tuple("Workgroup").field(w).finish(),
            WindowsIdentity::Domain {
                domain, user, ou, ..
            } => f
                .debug_struct("Domain")
                .field("domain", domain)
                .field("user", user)
                .field("password", &REDACTED)
                .field("ou", ou)
                .finish(),
        }
    }
}

pub(super) fn customization_spec(spec: &CreateVm, macs: &[String]) -> CustomizationSpec {
    let name = || -> Box<dyn vim_rs::types::traits::CustomizationNameTrait> {
        Box::new(CustomizationFixedName {
            name: spec.hostname.clone(),
        })
    };
    let password = |value: &str| CustomizationPassword {
        value: value.to_string(),
        // Not encrypted by vCenter's wizard: the API must not try to decrypt it.
        plain_text: true,
    };
    let (identity, options): (
        Box<dyn CustomizationIdentitySettingsTrait>,
        Option<Box<dyn CustomizationOptionsTrait>>,
    ) = match &spec.guest {
        GuestFamily::Linux(linux) => (
            Box::new(CustomizationLinuxPrep {
                host_name: name(),
                domain: linux.domain.clone(),
                time_zone: linux.time_zone.clone(),
                hw_clock_utc: linux.hw_clock_utc,
                script_text: linux.script_text.clone(),
                compatible_customization_method: None,
                reset_password: None,
                password: None,
                extra_config: None,
            }),
            None,
        ),
        GuestFamily::Windows(win) => {
            let identification = match &win.identity {
                WindowsIdentity::Workgroup(workgroup) => CustomizationIdentification {
                    join_workgroup: Some(workgroup.clone()),
                    join_domain: None,
                    domain_admin: None,
                    domain_admin_password: None,
                    domain_ou: None,
                },
                WindowsIdentity::Domain {
                    domain,
                    user,
                    password: domain_password,
                    ou,
                } => CustomizationIdentification {
                    join_workgroup: None,
                    join_domain: Some(domain.clone()),
                    domain_admin: Some(user.clone()),
                    domain_admin_password: Some(password(domain_password)),
                    domain_ou: ou.clone(),
                },
            };
            (
                Box::new(CustomizationSysprep {
                    gui_unattended: CustomizationGuiUnattended {
                        password: Some(password(&win.admin_password)),
                        time_zone: win.time_zone,
                        auto_logon: win.auto_logon,
                        auto_logon_count: win.auto_logon_count,
                    },
                    user_data: CustomizationUserData {
                        full_name: win.full_name.clone(),
                        org_name: win.organization_name.clone(),
                        computer_name: name(),
                        // The API takes an empty product id as "none".
                        product_id: win.product_key.clone().unwrap_or_default(),
                    },
                    gui_run_once: (!win.run_once.is_empty()).then(|| CustomizationGuiRunOnce {
                        command_list: win.run_once.clone(),
                    }),
                    identification,
                    license_file_print_data: None,
                    script_text: None,
                    reset_password: None,
                    extra_config: None,
                }),
                Some(Box::new(CustomizationWinOptions {
                    change_sid: true,
                    delete_accounts: false,
                    reboot: None,
                })),
            )
        }
    };
    let mut dns_servers: Vec<String> = Vec::new();
    let mut suffixes: Vec<String> = Vec::new();
    if let GuestFamily::Linux(linux) = &spec.guest {
        suffixes.push(linux.domain.clone());
    }
    let nic_setting_map = spec
        .nics
        .iter()
        .zip(macs)
        .map(|(nic, mac)| {
            let servers: Vec<String> = nic.dns_servers.iter().map(IpAddr::to_string).collect();
            for s in &servers {
                if !dns_servers.contains(s) {
                    dns_servers.push(s.clone());
                }
            }
            if let Some(d) = nic.dns_domain.as_ref().filter(|d| !d.is_empty()) {
                if !suffixes.contains(d) {
                    suffixes.push(d.clone());
                }
            }
            // vCenter needs an IPv4 generator on every adapter: an IPv6-only NIC takes DHCP.
            let (ip, subnet_mask, gateway): (Box<dyn CustomizationIpGeneratorTrait>, _, _) =
                match &nic.ipv4 {
                    Some(v4) => (
                        Box::new(CustomizationFixedIp {
                            ip_address: v4.ip.to_string(),
                        }),
                        Some(netmask(v4.prefix_len).to_string()),
                        non_empty(v4.gateways.iter().map(Ipv4Addr::to_string).collect()),
                    ),
                    None => (Box::new(CustomizationDhcpIpGenerator {}), None, None),
                };
            let ip_v_6_spec = nic
                .ipv6
                .as_ref()
                .map(|v6| CustomizationIpSettingsIpV6AddressSpec {
                    ip: vec![Box::new(CustomizationFixedIpV6 {
                        ip_address: v6.ip.to_string(),
                        subnet_mask: i32::from(v6.prefix_len),
                    })
                        as Box<dyn CustomizationIpV6GeneratorTrait>],
                    gateway: non_empty(v6.gateways.iter().map(Ipv6Addr::to_string).collect()),
                });
            CustomizationAdapterMapping {
                mac_address: Some(mac.clone()),
                adapter: CustomizationIpSettings {
                    ip,
                    subnet_mask,
                    gateway,
                    ip_v_6_spec,
                    dns_server_list: non_empty(servers),
                    dns_domain: nic.dns_domain.clone().filter(|d| !d.is_empty()),
                    primary_wins: None,
                    secondary_wins: None,
                    net_bios: None,
                },
            }
        })
        .collect();
    CustomizationSpec {
        options,
        identity,
        // Resolvers: Linux takes the global list, Windows each adapter's (set above). Search
        // suffixes: global for both.
        global_ip_settings: CustomizationGlobalIpSettings {
            dns_suffix_list: non_empty(suffixes),
            dns_server_list: non_empty(dns_servers),
        },
        nic_setting_map: Some(nic_setting_map),
        encryption_key: None,
    }
}

fn netmask(prefix_len: u8) -> Ipv4Addr {
    let bits = u32::from(prefix_len.min(32));
    Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
}

fn non_empty(list: Vec<String>) -> Option<Vec<String>> {
    (!list.is_empty()).then_some(list)
}
