data "vsphereipam_wire" "app" {
  name = "pg-app"
}

data "vsphereipam_wire" "db" {
  name = "pg-db"
}

resource "vsphereipam_ipsubnet" "app" {
  name        = "app"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "10.20.0.0/24"
  start_ip    = "10.20.0.100"
  gateway     = "10.20.0.1"
  dns_servers = ["10.20.0.2"]
  domain      = "app.example.com"
}

# An IPv6 subnet on the same wire as app: pg-app is dual stack.
resource "vsphereipam_ipsubnet" "app6" {
  name        = "app6"
  wire_id     = data.vsphereipam_wire.app.id
  cidr        = "2001:db8:0:20::/64"
  gateway     = "2001:db8:0:20::1"
  dns_servers = ["2001:db8:0:20::2"]
}

resource "vsphereipam_ipsubnet" "db" {
  name    = "db"
  wire_id = data.vsphereipam_wire.db.id
  cidr    = "10.30.0.0/24"
  gateway = "10.30.0.1"
}

# Three web VMs, each with the next free address of the app subnet, spread over the hosts that
# carry pg-app.
resource "vsphereipam_vm" "web" {
  count      = 3
  name       = "web-${count.index}"
  datacenter = "DC0"
  template   = "tmpl-linux"
  num_cpus   = 2
  memory_mb  = 4096

  network_interface {
    subnet_id = vsphereipam_ipsubnet.app.id
  }
}

# A Linux database VM at a chosen address, with its own host name, time zone and a script run
# by the customization. Its domain is the app subnet's (app.example.com).
resource "vsphereipam_vm" "db" {
  name             = "db-0"
  datacenter       = "DC0"
  template         = "tmpl-linux"
  guest_ip_timeout = "5m"

  network_interface {
    subnet_id  = vsphereipam_ipsubnet.app.id
    ip_address = "10.20.0.200"
  }

  linux {
    host_name    = "db0"
    time_zone    = "Europe/Berlin"
    hw_clock_utc = true
    script_text  = <<-EOT
      #!/bin/sh
      if [ "$1" = "postcustomization" ]; then
        echo "customized by Terraform" > /etc/motd
      fi
    EOT
  }
}

# The Administrator password comes from a sensitive variable (TF_VAR_windows_admin_password):
# Terraform hides it in plans, the provider never logs it.
variable "windows_admin_password" {
  type      = string
  sensitive = true
}

# A Windows server in a workgroup. Windows templates need a windows block with an
# admin_password: a Windows VM is never left with a blank Administrator password. To join a
# domain instead, set join_domain, domain_admin_user and domain_admin_password.
resource "vsphereipam_vm" "win" {
  name       = "win-0"
  datacenter = "DC0"
  template   = "tmpl-windows"

  network_interface {
    subnet_id = vsphereipam_ipsubnet.app.id
  }

  windows {
    computer_name         = "WIN0"
    admin_password        = var.windows_admin_password
    workgroup             = "LAB"
    organization_name     = "Example Corp"
    time_zone             = 110 # W. Europe Standard Time
    run_once_command_list = ["winrm quickconfig -quiet"]
  }
}

# A router with a NIC on each subnet: only a host carrying both port groups can run it.
resource "vsphereipam_vm" "router" {
  name       = "router-0"
  datacenter = "DC0"
  template   = "tmpl-linux"

  network_interface {
    subnet_id = vsphereipam_ipsubnet.app.id
  }
  network_interface {
    subnet_id = vsphereipam_ipsubnet.db.id
  }
}

# A dual-stack VM: its NIC takes the next free address of the IPv4 subnet and a chosen one of
# the IPv6 subnet; the guest is customized with both (address, prefix, gateway) and the DNS
# servers of both subnets, and the apply waits until VMware Tools report both. A NIC whose
# subnet_id is an IPv6 subnet is IPv6-only (its IPv4 side is left to DHCP).
resource "vsphereipam_vm" "dual" {
  name       = "dual-0"
  datacenter = "DC0"
  template   = "tmpl-linux"

  network_interface {
    subnet_id      = vsphereipam_ipsubnet.app.id
    ipv6_subnet_id = vsphereipam_ipsubnet.app6.id
    ipv6_address   = "2001:db8:0:20::100"
  }
}

output "web_addresses" {
  value = vsphereipam_vm.web[*].network_interface[0].ip_address
}

output "dual_addresses" {
  value = [
    vsphereipam_vm.dual.network_interface[0].ip_address,
    vsphereipam_vm.dual.network_interface[0].ipv6_address,
  ]
}
