//! Guest customization of `vsphereipam_vm`: the optional `linux {}` and `windows {}` blocks,
//! their plan-time checks, and the [`GuestFamily`] spec they become for `vm_ops`.
//!
//! The guest family comes from the template's guest id; a block for the other family, or a
//! Windows template without a `windows` block, is refused at plan time. A Windows VM never gets
//! a blank Administrator password: `admin_password` is required. Every input here is used once,
//! by the create, so a change replaces the VM (see `vm.rs`'s `plan_update`).

use std::str::FromStr;

use serde::{Deserialize, Serialize};
use tfplugin::schema::{Attribute, AttributeType, Block, Description, NestedBlock};
use tfplugin::value::{Value, ValueBool, ValueList, ValueNumber, ValueString};
use tfplugin::{map, AttributePath, Diagnostics};

use super::schema::{optional, sensitive, string_list};
use super::values::{self, known};
use crate::vsphere::vm_ops::{GuestFamily, LinuxPrep, Sysprep, WindowsIdentity};

/// Windows (NetBIOS) computer names are at most 15 characters.
pub const MAX_WINDOWS_NAME: usize = 15;

/// `linux.domain` when neither it nor the first NIC's subnet gives one: the name glibc and
/// systemd use for a host without a DNS domain.
pub const FALLBACK_DOMAIN: &str = "localdomain";

/// Defaults of the `windows` block, as documented in the schema.
pub const DEFAULT_WORKGROUP: &str = "WORKGROUP";
pub const DEFAULT_FULL_NAME: &str = "Administrator";
pub const DEFAULT_ORGANIZATION: &str = "Managed by Terraform";
pub const DEFAULT_WINDOWS_TIME_ZONE: i64 = 85;

/// Microsoft's time zone indexes (the `TimeZone` values sysprep takes), with their names.
pub const WINDOWS_TIME_ZONES: &[(i64, &str)] = &[
    (0, "Dateline Standard Time"),
    (1, "Samoa Standard Time"),
    (2, "Hawaiian Standard Time"),
    (3, "Alaskan Standard Time"),
    (4, "Pacific Standard Time"),
    (10, "Mountain Standard Time"),
    (13, "Mexico Standard Time 2"),
    (15, "U.S. Mountain Standard Time"),
    (20, "Central Standard Time"),
    (25, "Canada Central Standard Time"),
    (30, "Mexico Standard Time"),
    (33, "Central America Standard Time"),
    (35, "Eastern Standard Time"),
    (40, "U.S. Eastern Standard Time"),
    (45, "S.A. Pacific Standard Time"),
    (50, "Atlantic Standard Time"),
    (55, "S.A. Western Standard Time"),
    (56, "Pacific S.A. Standard Time"),
    (60, "Newfoundland Standard Time"),
    (65, "E. South America Standard Time"),
    (70, "S.A. Eastern Standard Time"),
    (73, "Greenland Standard Time"),
    (75, "Mid-Atlantic Standard Time"),
    (80, "Azores Standard Time"),
    (83, "Cape Verde Standard Time"),
    (85, "GMT Standard Time"),
    (90, "Greenwich Standard Time"),
    (95, "Central Europe Standard Time"),
    (100, "Central European Standard Time"),
    (105, "Romance Standard Time"),
    (110, "W. Europe Standard Time"),
    (113, "W. Central Africa Standard Time"),
    (115, "E. Europe Standard Time"),
    (120, "Egypt Standard Time"),
    (125, "FLE Standard Time"),
    (130, "GTB Standard Time"),
    (135, "Israel Standard Time"),
    (140, "South Africa Standard Time"),
    (145, "Russian Standard Time"),
    (150, "Arab Standard Time"),
    (155, "E. Africa Standard Time"),
    (158, "Arabic Standard Time"),
    (160, "Iran Standard Time"),
    (165, "Arabian Standard Time"),
    (170, "Caucasus Standard Time"),
    (175, "Afghanistan Standard Time"),
    (180, "Ekaterinburg Standard Time"),
    (185, "West Asia Standard Time"),
    (190, "India Standard Time"),
    (193, "Nepal Standard Time"),
    (195, "Central Asia Standard Time"),
    (200, "Sri Lanka Standard Time"),
    (201, "N. Central Asia Standard Time"),
    (203, "Myanmar Standard Time"),
    (205, "S.E. Asia Standard Time"),
    (207, "North Asia Standard Time"),
    (210, "China Standard Time"),
    (215, "Singapore Standard Time"),
    (220, "Taipei Standard Time"),
    (225, "W. Australia Standard Time"),
    (227, "North Asia East Standard Time"),
    (230, "Korea Standard Time"),
    (235, "Tokyo Standard Time"),
    (240, "Yakutsk Standard Time"),
    (245, "A.U.S. Central Standard Time"),
    (250, "Cen. Australia Standard Time"),
    (255, "A.U.S. Eastern Standard Time"),
    (260, "E. Australia Standard Time"),
    (265, "Tasmania Standard Time"),
    (270, "Vladivostok Standard Time"),
    (275, "West Pacific Standard Time"),
    (280, "Central Pacific Standard Time"),
    (285, "Fiji Standard Time"),
    (290, "New Zealand Standard Time"),
    (300, "Tonga Standard Time"),
];

/// Serde for an optional block (a list of at most one element on the wire). Unlike
/// `tfplugin::value::serde_as_vec` it also reads a null or missing list as no block: a state
/// written before the blocks existed has neither.
pub mod optional_block {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};
    use tfplugin::value::Value;

    pub fn serialize<T: Serialize, S: Serializer>(
        value: &Value<T>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        tfplugin::value::serde_as_vec::serialize(value, serializer)
    }

    pub fn deserialize<'de, T, D>(deserializer: D) -> Result<Value<T>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        let list: Option<Vec<Value<T>>> = Deserialize::deserialize(deserializer)?;
        let mut items = list.unwrap_or_default().into_iter();
        match (items.next(), items.next()) {
            (None, _) => Ok(Value::Null),
            (Some(one), None) => Ok(one),
            (Some(_), Some(_)) => Err(serde::de::Error::custom(
                "at most one block is allowed here",
            )),
        }
    }
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinuxState<'a> {
    pub host_name: ValueString<'a>,
    pub domain: ValueString<'a>,
    pub time_zone: ValueString<'a>,
    pub hw_clock_utc: ValueBool,
    pub script_text: ValueString<'a>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowsState<'a> {
    pub computer_name: ValueString<'a>,
    pub admin_password: ValueString<'a>,
    pub admin_password_wo: ValueString<'a>,
    pub workgroup: ValueString<'a>,
    pub join_domain: ValueString<'a>,
    pub domain_admin_user: ValueString<'a>,
    pub domain_admin_password: ValueString<'a>,
    pub domain_admin_password_wo: ValueString<'a>,
    pub domain_ou: ValueString<'a>,
    pub full_name: ValueString<'a>,
    pub organization_name: ValueString<'a>,
    pub product_key: ValueString<'a>,
    pub time_zone: ValueNumber,
    pub auto_logon: ValueBool,
    pub auto_logon_count: ValueNumber,
    pub run_once_command_list: ValueList<ValueString<'a>>,
}

const REPLACES: &str = "Customization runs once, at create: changing this replaces the VM.";

/// A write-only variant of the sensitive attribute `instead` (Terraform 1.11+).
fn write_only(instead: &str) -> Attribute {
    Attribute {
        write_only: true,
        use_instead: Some(instead.to_string()),
        ..sensitive(
            AttributeType::String,
            &format!(
                "Write-only variant of `{instead}` (Terraform 1.11+): the value reaches vCenter \
                 at create and is never stored in the state or the plan. Set this or \
                 `{instead}`, not both; older Terraform versions refuse it with a diagnostic \
                 naming `{instead}`. Terraform cannot compare a value it does not store, so \
                 changing it alone does not replace the VM."
            ),
        )
    }
}

pub fn linux_block() -> NestedBlock {
    NestedBlock::Optional(Block {
        version: 1,
        description: Description::markdown(
            "Linux guest customization (`CustomizationLinuxPrep`); only for templates whose guest \
             family is not Windows. Without the block, Linux templates are customized with the \
             defaults below. Changing anything in it replaces the VM; an imported VM records it \
             with the first apply, without changing the VM.",
        ),
        attributes: map! {
            "host_name" => optional(AttributeType::String, &format!(
                "Host name of the guest. Default: `hostname`, else `name` reduced to a valid \
                 host name; when both this and `hostname` are set they must agree. {REPLACES}")),
            "domain" => optional(AttributeType::String, &format!(
                "DNS domain of the guest. Default: the `domain` of the first \
                 `network_interface`'s subnet; when that subnet has none, `{FALLBACK_DOMAIN}` \
                 (the host then has no real DNS domain; set one here or on the subnet). \
                 {REPLACES}")),
            "time_zone" => optional(AttributeType::String, &format!(
                "Time zone as a tz database name, such as `Europe/Berlin` or `UTC` (checked at \
                 plan time). Default: the template's. {REPLACES}")),
            "hw_clock_utc" => optional(AttributeType::Bool, &format!(
                "Whether the hardware clock keeps UTC (default `true`). {REPLACES}")),
            "script_text" => optional(AttributeType::String, &format!(
                "Customization script, run by VMware Tools in the guest before and after the \
                 customization (`precustomization`/`postcustomization` argument). Default: \
                 none. {REPLACES}"))
        },
        ..Default::default()
    })
}

pub fn windows_block() -> NestedBlock {
    NestedBlock::Optional(Block {
        version: 1,
        description: Description::markdown(
            "Windows guest customization (sysprep, `CustomizationSysprep`); required for \
             templates whose guest family is Windows, refused for others. The machine joins a \
             workgroup (`workgroup`, default `WORKGROUP`) or a domain (`join_domain` with \
             `domain_admin_user` and `domain_admin_password`). Changing anything in it replaces \
             the VM; an imported VM records it with the first apply, without changing the VM. \
             Passwords and the product key are sensitive: Terraform hides them in plans, the \
             provider never logs them, and vCenter receives them as plain-text customization \
             passwords (as its API requires for passwords it did not encrypt itself). With \
             Terraform 1.11 or later, `admin_password_wo` and `domain_admin_password_wo` keep \
             the passwords out of the state altogether.",
        ),
        attributes: map! {
            "computer_name" => optional(AttributeType::String, &format!(
                "Computer (NetBIOS) name, at most {MAX_WINDOWS_NAME} characters, not only \
                 digits. Default: `hostname`, else `name` reduced to {MAX_WINDOWS_NAME} \
                 characters; when both this and `hostname` are set they must agree. {REPLACES}")),
            "admin_password" => sensitive(AttributeType::String, &format!(
                "Password of the local Administrator. Required (or `admin_password_wo`): a \
                 Windows VM is never left with a blank Administrator password. {REPLACES}")),
            "admin_password_wo" => write_only("admin_password"),
            "workgroup" => optional(AttributeType::String, &format!(
                "Workgroup to join (default `{DEFAULT_WORKGROUP}`); not with `join_domain`. \
                 {REPLACES}")),
            "join_domain" => optional(AttributeType::String, &format!(
                "Active Directory domain to join; needs `domain_admin_user` and \
                 `domain_admin_password`. {REPLACES}")),
            "domain_admin_user" => optional(AttributeType::String, &format!(
                "User allowed to join computers to `join_domain`. {REPLACES}")),
            "domain_admin_password" => sensitive(AttributeType::String, &format!(
                "Password of `domain_admin_user` (or `domain_admin_password_wo`). {REPLACES}")),
            "domain_admin_password_wo" => write_only("domain_admin_password"),
            "domain_ou" => optional(AttributeType::String, &format!(
                "Organizational unit for the computer account, such as \
                 `OU=web,DC=corp,DC=example` (with `join_domain`). Default: the domain's \
                 default container. {REPLACES}")),
            "full_name" => optional(AttributeType::String, &format!(
                "Registered owner (default `{DEFAULT_FULL_NAME}`). {REPLACES}")),
            "organization_name" => optional(AttributeType::String, &format!(
                "Registered organization (default `{DEFAULT_ORGANIZATION}`). {REPLACES}")),
            "product_key" => sensitive(AttributeType::String, &format!(
                "Windows product key. Default: none (volume-licensed templates need none). \
                 {REPLACES}")),
            "time_zone" => optional(AttributeType::Number, &format!(
                "Microsoft time zone index, such as `85` (GMT Standard Time, the default), `110` \
                 (W. Europe) or `35` (Eastern); checked at plan time against Microsoft's list of \
                 time zone indexes. {REPLACES}")),
            "auto_logon" => optional(AttributeType::Bool, &format!(
                "Log on as Administrator automatically after customization (default `false`). \
                 {REPLACES}")),
            "auto_logon_count" => optional(AttributeType::Number, &format!(
                "How many times Administrator is logged on automatically when `auto_logon` is \
                 set (default `1`, at least 1). {REPLACES}")),
            "run_once_command_list" => optional(string_list(), &format!(
                "Commands run once at the first logon after customization, in order. Default: \
                 none. {REPLACES}"))
        },
        ..Default::default()
    })
}

fn linux_path(attribute: &'static str) -> AttributePath {
    AttributePath::new("linux").index(0).attribute(attribute)
}

fn windows_path(attribute: &'static str) -> AttributePath {
    AttributePath::new("windows").index(0).attribute(attribute)
}

/// A tz database name this build knows (chrono-tz's copy of the IANA database).
pub fn valid_tz_name(name: &str) -> bool {
    chrono_tz::Tz::from_str(name).is_ok()
}

pub fn windows_time_zone(index: i64) -> Option<&'static str> {
    WINDOWS_TIME_ZONES
        .iter()
        .find(|(i, _)| *i == index)
        .map(|(_, name)| *name)
}

fn valid_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain.len() <= 253
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        })
}

fn valid_windows_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_WINDOWS_NAME
        && !name.chars().all(|c| c.is_ascii_digit())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Config-only checks of the two blocks (`hostname` is the resource's own attribute).
pub fn validate(
    diags: &mut Diagnostics,
    linux: &Value<LinuxState<'_>>,
    windows: &Value<WindowsState<'_>>,
    hostname: &ValueString<'_>,
) {
    if linux.is_value() && windows.is_value() {
        diags.error(
            "Both linux and windows blocks",
            "A VM is customized as Linux or as Windows, after its template's guest family: keep \
             only the block for the template's family.",
            AttributePath::new("windows"),
        );
    }
    let conflicts = |diags: &mut Diagnostics, name: &ValueString<'_>, path: AttributePath| {
        if let (Value::Value(a), Value::Value(b)) = (name, hostname) {
            if a != b {
                diags.error(
                    "Two different host names",
                    format!(
                        "hostname is {b:?} but this block names the guest {a:?}; set one of \
                         them, or the same value in both."
                    ),
                    path,
                );
            }
        }
    };
    if let Value::Value(l) = linux {
        conflicts(diags, &l.host_name, linux_path("host_name"));
        if let Value::Value(h) = &l.host_name {
            if !super::vm::valid_host_name(h) {
                diags.error(
                    "Invalid host_name",
                    format!(
                        "{h:?} is not a host name: use letters, digits and inner hyphens, at \
                         most 63 characters."
                    ),
                    linux_path("host_name"),
                );
            }
        }
        if let Value::Value(d) = &l.domain {
            if !valid_domain(d) {
                diags.error(
                    "Invalid domain",
                    format!(
                        "{d:?} is not a DNS domain: write labels of letters, digits and inner \
                         hyphens separated by dots, such as corp.example.com."
                    ),
                    linux_path("domain"),
                );
            }
        }
        if let Value::Value(tz) = &l.time_zone {
            if !valid_tz_name(tz) {
                diags.error(
                    "Unknown time zone",
                    format!(
                        "{tz:?} is not a tz database name; write one such as \"Europe/Berlin\", \
                         \"America/New_York\" or \"UTC\" (case matters)."
                    ),
                    linux_path("time_zone"),
                );
            }
        }
    }
    let Value::Value(w) = windows else {
        return;
    };
    conflicts(diags, &w.computer_name, windows_path("computer_name"));
    if let Value::Value(n) = &w.computer_name {
        if !valid_windows_name(n) {
            diags.error(
                "Invalid computer_name",
                format!(
                    "{n:?} is not a Windows computer name: at most {MAX_WINDOWS_NAME} letters, \
                     digits and inner hyphens, not only digits."
                ),
                windows_path("computer_name"),
            );
        }
    }
    let missing = |v: &ValueString<'_>| match v {
        Value::Null => true,
        Value::Value(s) => s.is_empty(),
        Value::Unknown => false,
    };
    if missing(&w.admin_password) && missing(&w.admin_password_wo) {
        diags.error(
            "Missing Administrator password",
            "A Windows VM is never left with a blank Administrator password: set \
             windows.admin_password (for example from a sensitive variable), or \
             windows.admin_password_wo to keep it out of the state (Terraform 1.11+).",
            windows_path("admin_password"),
        );
    }
    for (plain, value, wo_name, wo) in [
        (
            "admin_password",
            &w.admin_password,
            "admin_password_wo",
            &w.admin_password_wo,
        ),
        (
            "domain_admin_password",
            &w.domain_admin_password,
            "domain_admin_password_wo",
            &w.domain_admin_password_wo,
        ),
    ] {
        if !value.is_null() && !wo.is_null() {
            diags.error(
                format!("{plain} and {wo_name} together"),
                format!(
                    "Set one of them: {wo_name} keeps the password out of the state (Terraform \
                     1.11+), {plain} stores it there (sensitive)."
                ),
                windows_path(wo_name),
            );
        }
    }
    if w.join_domain.is_value() {
        if w.workgroup.is_value() {
            diags.error(
                "workgroup and join_domain together",
                "A Windows VM joins either a workgroup or a domain: remove workgroup, or \
                 join_domain and its credentials.",
                windows_path("workgroup"),
            );
        }
        let domain_password = if missing(&w.domain_admin_password) {
            &w.domain_admin_password_wo
        } else {
            &w.domain_admin_password
        };
        for (attr, value) in [
            ("domain_admin_user", &w.domain_admin_user),
            ("domain_admin_password", domain_password),
        ] {
            if missing(value) {
                diags.error(
                    format!("Missing {attr}"),
                    format!(
                        "Joining the domain needs an account allowed to add computers to it: \
                         set windows.{attr}."
                    ),
                    windows_path(attr),
                );
            }
        }
    } else {
        for (attr, value) in [
            ("domain_admin_user", w.domain_admin_user.is_value()),
            ("domain_admin_password", w.domain_admin_password.is_value()),
            (
                "domain_admin_password_wo",
                w.domain_admin_password_wo.is_value(),
            ),
            ("domain_ou", w.domain_ou.is_value()),
        ] {
            if value {
                diags.error(
                    format!("{attr} without join_domain"),
                    format!(
                        "windows.{attr} is only used to join a domain: set join_domain, or \
                         remove {attr}."
                    ),
                    windows_path(attr),
                );
            }
        }
    }
    if let Value::Value(tz) = &w.time_zone {
        if windows_time_zone(*tz).is_none() {
            diags.error(
                "Unknown Windows time zone index",
                format!(
                    "{tz} is not one of Microsoft's time zone indexes; use one such as 85 (GMT \
                     Standard Time), 110 (W. Europe), 35 (Eastern) or 4 (Pacific). Known \
                     indexes: {}.",
                    WINDOWS_TIME_ZONES
                        .iter()
                        .map(|(i, _)| i.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                windows_path("time_zone"),
            );
        }
    }
    if let Value::Value(n) = &w.auto_logon_count {
        if *n < 1 || *n > i32::MAX as i64 {
            diags.error(
                "Invalid auto_logon_count",
                format!("auto_logon_count is {n}; it must be at least 1."),
                windows_path("auto_logon_count"),
            );
        }
    }
    if let Value::Value(list) = &w.run_once_command_list {
        for command in list {
            if matches!(command, Value::Null) {
                diags.error(
                    "Null command in run_once_command_list",
                    "Give every command as a string, or remove the null entry.",
                    windows_path("run_once_command_list"),
                );
            }
        }
    }
}

/// The customization a create asks for, every value known.
#[derive(Clone, PartialEq, Eq)]
pub enum GuestInput {
    /// No block: a Linux template gets the defaults; a Windows template is refused.
    Default,
    Linux(LinuxInput),
    Windows(WindowsInput),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LinuxInput {
    pub host_name: Option<String>,
    pub domain: Option<String>,
    pub time_zone: Option<String>,
    pub hw_clock_utc: Option<bool>,
    pub script_text: Option<String>,
}

#[derive(Clone, PartialEq, Eq)]
pub struct WindowsInput {
    pub computer_name: Option<String>,
    pub admin_password: String,
    pub workgroup: Option<String>,
    pub join_domain: Option<String>,
    pub domain_admin_user: Option<String>,
    pub domain_admin_password: Option<String>,
    pub domain_ou: Option<String>,
    pub full_name: Option<String>,
    pub organization_name: Option<String>,
    pub product_key: Option<String>,
    pub time_zone: Option<i64>,
    pub auto_logon: Option<bool>,
    pub auto_logon_count: Option<i64>,
    pub run_once: Vec<String>,
}

impl std::fmt::Debug for GuestInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The Windows input carries passwords: only its family is shown.
        match self {
            GuestInput::Default => f.write_str("Default"),
            GuestInput::Linux(l) => f.debug_tuple("Linux").field(l).finish(),
            GuestInput::Windows(_) => f.write_str("Windows(..)"),
        }
    }
}

impl GuestInput {
    /// The guest's name as the block gives it.
    pub fn name(&self) -> Option<&str> {
        match self {
            GuestInput::Default => None,
            GuestInput::Linux(l) => l.host_name.as_deref(),
            GuestInput::Windows(w) => w.computer_name.as_deref(),
        }
    }
}

fn text(v: &ValueString<'_>) -> Option<Option<String>> {
    values::field_str(v).settled()
}

fn flag(v: &ValueBool) -> Option<Option<bool>> {
    match v {
        Value::Unknown => None,
        Value::Null => Some(None),
        Value::Value(b) => Some(Some(*b)),
    }
}

fn number(v: &ValueNumber) -> Option<Option<i64>> {
    values::field_num(v).settled()
}

/// A password from its write-only variant when that is set (Terraform 1.11+ sends it in the
/// configuration only), else from the stored attribute; `None` while unknown.
fn password(stored: &ValueString<'_>, write_only: &ValueString<'_>) -> Option<Option<String>> {
    match text(write_only)? {
        Some(p) => Some(Some(p)),
        None => text(stored),
    }
}

/// `None` while a value is unknown.
pub fn input_of(
    linux: &Value<LinuxState<'_>>,
    windows: &Value<WindowsState<'_>>,
) -> Option<GuestInput> {
    match (linux, windows) {
        (Value::Unknown, _) | (_, Value::Unknown) => None,
        (Value::Value(l), _) => Some(GuestInput::Linux(LinuxInput {
            host_name: text(&l.host_name)?,
            domain: text(&l.domain)?,
            time_zone: text(&l.time_zone)?,
            hw_clock_utc: flag(&l.hw_clock_utc)?,
            script_text: text(&l.script_text)?,
        })),
        (_, Value::Value(w)) => {
            let run_once = match &w.run_once_command_list {
                Value::Unknown => return None,
                Value::Null => Vec::new(),
                Value::Value(list) => {
                    let mut out = Vec::new();
                    for c in list {
                        out.push(known(c)?);
                    }
                    out
                }
            };
            Some(GuestInput::Windows(WindowsInput {
                computer_name: text(&w.computer_name)?,
                admin_password: password(&w.admin_password, &w.admin_password_wo)?
                    .unwrap_or_default(),
                workgroup: text(&w.workgroup)?,
                join_domain: text(&w.join_domain)?,
                domain_admin_user: text(&w.domain_admin_user)?,
                domain_admin_password: password(
                    &w.domain_admin_password,
                    &w.domain_admin_password_wo,
                )?,
                domain_ou: text(&w.domain_ou)?,
                full_name: text(&w.full_name)?,
                organization_name: text(&w.organization_name)?,
                product_key: text(&w.product_key)?,
                time_zone: number(&w.time_zone)?,
                auto_logon: flag(&w.auto_logon)?,
                auto_logon_count: number(&w.auto_logon_count)?,
                run_once,
            }))
        }
        _ => Some(GuestInput::Default),
    }
}

/// Plan-time check of the blocks against the template's family; `template` names it.
pub fn check_family(
    diags: &mut Diagnostics,
    windows_template: bool,
    template: &str,
    guest: &GuestInput,
) -> bool {
    let refusal = match (windows_template, guest) {
        (true, GuestInput::Linux(_)) => Some((
            "linux block for a Windows template",
            format!(
                "Template {template:?} is a Windows template: customize it with a windows block \
                 instead of linux."
            ),
            "linux",
        )),
        (true, GuestInput::Default) => Some((
            "Missing windows block",
            format!(
                "Template {template:?} is a Windows template: add a windows block with at least \
                 admin_password, so the VM never gets a blank Administrator password."
            ),
            "windows",
        )),
        (false, GuestInput::Windows(_)) => Some((
            "windows block for a non-Windows template",
            format!(
                "Template {template:?} is not a Windows template: customize it with a linux \
                 block (or none) instead of windows."
            ),
            "windows",
        )),
        _ => None,
    };
    match refusal {
        Some((summary, detail, block)) => {
            // The block itself when there is one (Terraform then quotes its first line).
            let path = match guest {
                GuestInput::Default => AttributePath::new(block),
                _ => AttributePath::new(block).index(0),
            };
            diags.error(summary, detail, path);
            false
        }
        None => true,
    }
}

/// The spec for `vm_ops`; `first_domain` is the first NIC's subnet's domain. `None` for a
/// combination [`check_family`] refuses.
pub fn guest_family(
    windows_template: bool,
    guest: &GuestInput,
    first_domain: Option<&str>,
) -> Option<GuestFamily> {
    let linux = |l: Option<&LinuxInput>| {
        GuestFamily::Linux(LinuxPrep {
            domain: l
                .and_then(|l| l.domain.clone())
                .or_else(|| first_domain.filter(|d| !d.is_empty()).map(str::to_string))
                .unwrap_or_else(|| FALLBACK_DOMAIN.to_string()),
            time_zone: l.and_then(|l| l.time_zone.clone()),
            hw_clock_utc: Some(l.and_then(|l| l.hw_clock_utc).unwrap_or(true)),
            script_text: l.and_then(|l| l.script_text.clone()),
        })
    };
    match (windows_template, guest) {
        (false, GuestInput::Default) => Some(linux(None)),
        (false, GuestInput::Linux(l)) => Some(linux(Some(l))),
        (true, GuestInput::Windows(w)) => {
            let identity = match &w.join_domain {
                Some(domain) => WindowsIdentity::Domain {
                    domain: domain.clone(),
                    user: w.domain_admin_user.clone().unwrap_or_default(),
                    password: w.domain_admin_password.clone().unwrap_or_default(),
                    ou: w.domain_ou.clone(),
                },
                None => WindowsIdentity::Workgroup(
                    w.workgroup
                        .clone()
                        .unwrap_or_else(|| DEFAULT_WORKGROUP.to_string()),
                ),
            };
            Some(GuestFamily::Windows(Sysprep {
                admin_password: w.admin_password.clone(),
                identity,
                full_name: w
                    .full_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_FULL_NAME.to_string()),
                organization_name: w
                    .organization_name
                    .clone()
                    .unwrap_or_else(|| DEFAULT_ORGANIZATION.to_string()),
                product_key: w.product_key.clone().filter(|k| !k.is_empty()),
                time_zone: w.time_zone.unwrap_or(DEFAULT_WINDOWS_TIME_ZONE) as i32,
                auto_logon: w.auto_logon.unwrap_or(false),
                auto_logon_count: w.auto_logon_count.unwrap_or(1) as i32,
                run_once: w.run_once.clone(),
            }))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn s(v: &str) -> ValueString<'static> {
        Value::Value(Cow::Owned(v.to_string()))
    }

    fn errors(linux: Value<LinuxState<'_>>, windows: Value<WindowsState<'_>>) -> Vec<String> {
        let mut diags = Diagnostics::default();
        validate(&mut diags, &linux, &windows, &Value::Null);
        diags
            .errors
            .iter()
            .map(|d| format!("{}: {}", d.summary, d.detail))
            .collect()
    }

    fn windows(f: impl FnOnce(&mut WindowsState<'static>)) -> Value<WindowsState<'static>> {
        let mut w = WindowsState {
            admin_password: s("S3cret!"),
            ..Default::default()
        };
        f(&mut w);
        Value::Value(w)
    }

    #[derive(Debug, Deserialize)]
    struct WithBlock<'a> {
        #[serde(default, with = "optional_block")]
        linux: Value<LinuxState<'a>>,
    }

    #[test]
    fn a_missing_or_null_block_reads_as_none() {
        for json in [r#"{}"#, r#"{"linux": null}"#, r#"{"linux": []}"#] {
            let read: WithBlock = serde_json::from_str(json).unwrap();
            assert!(read.linux.is_null(), "{json}");
        }
        let read: WithBlock = serde_json::from_str(
            r#"{"linux": [{"host_name": null, "domain": null, "time_zone": "UTC",
                "hw_clock_utc": null, "script_text": null}]}"#,
        )
        .unwrap();
        assert_eq!(read.linux.as_ref_option().unwrap().time_zone, s("UTC"));
        assert!(serde_json::from_str::<WithBlock>(r#"{"linux": [{}, {}]}"#).is_err());
    }

    #[test]
    fn windows_time_zone_indexes() {
        assert_eq!(windows_time_zone(85), Some("GMT Standard Time"));
        assert_eq!(windows_time_zone(110), Some("W. Europe Standard Time"));
        assert_eq!(windows_time_zone(300), Some("Tonga Standard Time"));
        assert_eq!(windows_time_zone(86), None);
        assert_eq!(windows_time_zone(-1), None);
        let mut sorted: Vec<i64> = WINDOWS_TIME_ZONES.iter().map(|(i, _)| *i).collect();
        sorted.dedup();
        assert_eq!(sorted.len(), WINDOWS_TIME_ZONES.len());
        assert!(sorted.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn tz_names() {
        for ok in ["Europe/Berlin", "America/New_York", "UTC", "Asia/Kolkata"] {
            assert!(valid_tz_name(ok), "{ok}");
        }
        for bad in [
            "Europe/Berlinn",
            "europe/berlin",
            "",
            "GMT+25",
            "Mars/Olympus",
        ] {
            assert!(!valid_tz_name(bad), "{bad}");
        }
    }

    #[test]
    fn windows_refusals() {
        assert!(errors(Value::Null, windows(|_| {})).is_empty());
        let e = errors(Value::Null, windows(|w| w.admin_password = Value::Null));
        assert!(e[0].starts_with("Missing Administrator password"), "{e:?}");
        let e = errors(Value::Null, windows(|w| w.admin_password = s("")));
        assert!(e[0].starts_with("Missing Administrator password"), "{e:?}");
        // Unknown (from a variable not known yet) is not missing.
        assert!(errors(Value::Null, windows(|w| w.admin_password = Value::Unknown)).is_empty());
        let e = errors(
            Value::Null,
            windows(|w| {
                w.join_domain = s("corp.example");
                w.workgroup = s("LAB");
            }),
        );
        assert_eq!(e.len(), 3, "{e:?}");
        assert!(e[0].starts_with("workgroup and join_domain together"));
        assert!(e[1].starts_with("Missing domain_admin_user"));
        assert!(e[2].starts_with("Missing domain_admin_password"));
        let e = errors(Value::Null, windows(|w| w.domain_ou = s("OU=x")));
        assert!(e[0].starts_with("domain_ou without join_domain"), "{e:?}");
        let e = errors(Value::Null, windows(|w| w.time_zone = Value::Value(86)));
        assert!(e[0].starts_with("Unknown Windows time zone index"), "{e:?}");
        let e = errors(
            Value::Null,
            windows(|w| w.auto_logon_count = Value::Value(0)),
        );
        assert!(e[0].starts_with("Invalid auto_logon_count"), "{e:?}");
        let e = errors(
            Value::Null,
            windows(|w| w.computer_name = s("a-much-too-long-name")),
        );
        assert!(e[0].starts_with("Invalid computer_name"), "{e:?}");
        let e = errors(Value::Value(LinuxState::default()), windows(|_| {}));
        assert!(e[0].starts_with("Both linux and windows blocks"), "{e:?}");
    }

    #[test]
    fn linux_refusals_and_defaults() {
        let linux = |f: fn(&mut LinuxState<'static>)| {
            let mut l = LinuxState::default();
            f(&mut l);
            Value::Value(l)
        };
        let e = errors(linux(|l| l.time_zone = s("Europe/Berlinn")), Value::Null);
        assert!(e[0].starts_with("Unknown time zone"), "{e:?}");
        let e = errors(linux(|l| l.domain = s("bad domain")), Value::Null);
        assert!(e[0].starts_with("Invalid domain"), "{e:?}");
        let mut diags = Diagnostics::default();
        validate(
            &mut diags,
            &linux(|l| l.host_name = s("a")),
            &Value::Null,
            &s("b"),
        );
        assert!(diags.errors[0]
            .summary
            .starts_with("Two different host names"));

        let GuestFamily::Linux(prep) =
            guest_family(false, &GuestInput::Default, Some("app.example.com")).unwrap()
        else {
            panic!("linux");
        };
        assert_eq!(prep.domain, "app.example.com");
        assert_eq!(prep.hw_clock_utc, Some(true));
        assert_eq!(prep.time_zone, None);
        let GuestFamily::Linux(prep) = guest_family(false, &GuestInput::Default, None).unwrap()
        else {
            panic!("linux");
        };
        assert_eq!(prep.domain, FALLBACK_DOMAIN);
        assert!(guest_family(true, &GuestInput::Default, None).is_none());
    }

    #[test]
    fn write_only_passwords_stand_in_for_the_stored_ones() {
        // Only the write-only variant: nothing missing, and it is the password used.
        let w = windows(|w| {
            w.admin_password = Value::Null;
            w.admin_password_wo = s("W0-secret");
            w.join_domain = s("corp.example.com");
            w.domain_admin_user = s("joiner");
            w.domain_admin_password_wo = s("J0-secret");
        });
        assert!(errors(Value::Null, w.clone()).is_empty());
        let Some(GuestInput::Windows(input)) = input_of(&Value::Null, &w) else {
            panic!("windows");
        };
        assert_eq!(input.admin_password, "W0-secret");
        assert_eq!(input.domain_admin_password.as_deref(), Some("J0-secret"));
        // Both of a pair: refused on the write-only one.
        let e = errors(
            Value::Null,
            windows(|w| w.admin_password_wo = s("W0-secret")),
        );
        assert!(
            e[0].starts_with("admin_password and admin_password_wo together"),
            "{e:?}"
        );
        // Neither: the stored one is asked for, and the write-only one offered.
        let e = errors(Value::Null, windows(|w| w.admin_password = Value::Null));
        assert!(e[0].contains("admin_password_wo"), "{e:?}");
        // A domain password without the domain, either variant.
        let e = errors(
            Value::Null,
            windows(|w| w.domain_admin_password_wo = s("x")),
        );
        assert!(
            e[0].starts_with("domain_admin_password_wo without join_domain"),
            "{e:?}"
        );
        // The schema marks them write-only and names the stored attribute to use instead.
        let NestedBlock::Optional(block) = windows_block() else {
            panic!("windows is an optional block");
        };
        for (wo, plain) in [
            ("admin_password_wo", "admin_password"),
            ("domain_admin_password_wo", "domain_admin_password"),
        ] {
            let a = &block.attributes[wo];
            assert!(a.write_only && a.sensitive, "{wo}");
            assert_eq!(a.use_instead.as_deref(), Some(plain));
        }
    }

    #[test]
    fn windows_defaults() {
        let input = input_of(&Value::Null, &windows(|_| {})).unwrap();
        let Some(GuestFamily::Windows(prep)) = guest_family(true, &input, None) else {
            panic!("windows");
        };
        assert_eq!(
            prep.identity,
            WindowsIdentity::Workgroup("WORKGROUP".into())
        );
        assert_eq!(prep.time_zone, 85);
        assert_eq!(prep.full_name, DEFAULT_FULL_NAME);
        assert_eq!(prep.organization_name, DEFAULT_ORGANIZATION);
        assert!(!prep.auto_logon);
        assert_eq!(prep.auto_logon_count, 1);
        assert_eq!(prep.admin_password, "S3cret!");
        // Debug output of the input and the spec never shows a secret.
        let shown = format!("{input:?} {prep:?}");
        assert!(!shown.contains("S3cret!"), "{shown}");
        assert!(guest_family(false, &input, None).is_none());
    }
}
