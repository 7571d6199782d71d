#!/usr/bin/env python3
"""Prints the quickstart's outputs (`terraform output -json` on stdin) as tables for `make demo`."""
import json
import sys


def table(title, header, rows):
    print(f"\n== {title}")
    widths = [max(len(str(c)) for c in col) for col in zip(header, *rows)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths)).rstrip())


outputs = {name: o["value"] for name, o in json.load(sys.stdin).items()}

wires = outputs.get("wires", {})
table(
    "wires found",
    ["port group", "type", "vlan", "switch", "hosts", "vm_ips", "vmkernel_ips"],
    [
        [name, w["type"], w["vlan_id"], w["switch"], w["hosts"],
         ", ".join(w["vm_ips"]) or "-", ", ".join(w["vmkernel_ips"]) or "-"]
        for name, w in sorted(wires.items())
    ],
)

if "subnets" in outputs:
    table(
        "subnets in the IPAM store",
        ["name", "cidr", "range", "additional wires", "id"],
        [[s["name"], s["cidr"], s["range"], ", ".join(s["additional_wire_ids"]) or "none", s["id"]]
         for s in outputs["subnets"]],
    )

if "allocated" in outputs:
    table(
        "addresses allocated (vsphereipam_ip_address)",
        ["name", "ip", "description"],
        [[a["name"], a["ip_address"], a["description"] or ""] for a in outputs["allocated"]],
    )

if "fixed" in outputs:
    table(
        "addresses recorded for existing VMs (vsphereipam_vm_nic_fix)",
        ["vm", "mac", "ip", "subnet"],
        [[f["vm"], n["mac"], n["ip_address"], n["subnet_id"]]
         for f in outputs["fixed"] for n in f["nics"]],
    )

if "vms" in outputs:
    table(
        "VMs created (vsphereipam_vm)",
        ["vm", "host", "port group", "address", "ipv6 address", "guest reports"],
        [[v["name"], v["host"], n["port_group"], n["ip_address"], n.get("ipv6_address") or "-",
          ", ".join(v["guest_ips"]) or "-"]
         for v in outputs["vms"] for n in v["nics"]],
    )
