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

# A database VM at a chosen address, with its own host name.
resource "vsphereipam_vm" "db" {
  name             = "db-0"
  datacenter       = "DC0"
  template         = "tmpl-linux"
  hostname         = "db0"
  guest_ip_timeout = "5m"

  network_interface {
    subnet_id  = vsphereipam_ipsubnet.app.id
    ip_address = "10.20.0.200"
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

output "web_addresses" {
  value = vsphereipam_vm.web[*].network_interface[0].ip_address
}
