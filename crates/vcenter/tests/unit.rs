//! Unit tests of the pure helpers of the vCenter client and inventory. They live here, not in
//! `#[cfg(test)]` modules, so `cargo test` links the crate once instead of compiling its
//! vim_rs-heavy code a second time in test mode.

use std::net::Ipv4Addr;

use vsphereipam_vcenter::client::*;
use vsphereipam_vcenter::guest::usable_ipv4;
use vsphereipam_vcenter::inventory::*;
use vsphereipam_vcenter::model::Vlan;

#[test]
fn normalizes_server_forms() {
    for (raw, want) in [
        ("vc.example.com", "vc.example.com"),
        ("vc.example.com:8443", "vc.example.com:8443"),
        ("https://vc.example.com", "vc.example.com"),
        ("HTTPS://vc.example.com:443/", "vc.example.com:443"),
        ("https://vc.example.com/sdk", "vc.example.com"),
        ("https://127.0.0.1:8989/sdk/", "127.0.0.1:8989"),
        ("[::1]:443", "[::1]:443"),
    ] {
        assert_eq!(normalize_server(raw).unwrap(), want, "{raw}");
    }
    assert!(normalize_server("").is_err());
    assert!(normalize_server("https://vc/x/y").is_err());
}

#[test]
fn debug_hides_password() {
    let opts = ConnectOptions {
        server: "vc".into(),
        user: "admin".into(),
        password: "s3cr3t-pw".into(),
        allow_unverified_ssl: false,
        transport: Transport::Soap,
    };
    let text = format!("{opts:?}");
    assert!(!text.contains("s3cr3t-pw"), "{text}");
    assert!(text.contains("admin"));
}

#[test]
fn parses_transport() {
    assert_eq!(Transport::parse("SOAP"), Some(Transport::Soap));
    assert_eq!(Transport::parse("json"), Some(Transport::Json));
    assert_eq!(Transport::parse("auto"), Some(Transport::Auto));
    assert_eq!(Transport::parse("rest"), None);
}

#[test]
fn recognizes_certificate_errors() {
    assert!(looks_like_certificate_problem(
        "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
    ));
    assert!(!looks_like_certificate_problem(
        "error sending request: client error (Connect): Connection refused (os error 111)"
    ));
}

#[test]
fn filters_guest_addresses() {
    assert_eq!(usable_ipv4("10.0.0.5"), Some(Ipv4Addr::new(10, 0, 0, 5)));
    assert_eq!(
        usable_ipv4(" 10.0.0.5/24"),
        Some(Ipv4Addr::new(10, 0, 0, 5))
    );
    assert_eq!(usable_ipv4("169.254.3.4"), None);
    assert_eq!(usable_ipv4("0.0.0.0"), None);
    assert_eq!(usable_ipv4("fe80::1"), None);
    assert_eq!(usable_ipv4(""), None);
    assert_eq!(usable_ipv4("garbage"), None);
}

#[test]
fn maps_standard_vlan_ids() {
    assert_eq!(standard_vlan(0), Vlan::None);
    assert_eq!(standard_vlan(120), Vlan::Id { id: 120 });
    assert_eq!(
        standard_vlan(4095),
        Vlan::Trunk {
            ranges: vec![(0, 4094)]
        }
    );
    assert_eq!(standard_vlan(-3), Vlan::None);
}

#[test]
fn guesses_guest_family() {
    assert_eq!(
        family_from_guest_id("windows9Server64Guest"),
        "windowsGuest"
    );
    assert_eq!(family_from_guest_id("ubuntu64Guest"), "linuxGuest");
    assert_eq!(family_from_guest_id("otherLinux64Guest"), "linuxGuest");
    assert_eq!(family_from_guest_id("otherGuest"), "otherGuestFamily");
    assert_eq!(
        family_from_guest_id("freebsd12_64Guest"),
        "otherGuestFamily"
    );
    assert_eq!(
        family_from_guest_id("darwin20_64Guest"),
        "darwinGuestFamily"
    );
}
