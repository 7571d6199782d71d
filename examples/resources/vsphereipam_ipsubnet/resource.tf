data "vsphereipam_wire" "db" {
  name = "pg-db"
}

resource "vsphereipam_ipsubnet" "db" {
  name            = "db"
  wire_id         = data.vsphereipam_wire.db.id
  cidr            = "10.30.0.0/24"
  start_ip        = "10.30.0.10"
  end_ip          = "10.30.0.250"
  gateway         = "10.30.0.1"
  dns_servers     = ["10.30.0.2", "10.30.0.3"]
  domain          = "db.corp.example"
  vlan_id         = 130
  alloc_policy    = "stepup"
  reserved_ranges = ["10.30.0.100-10.30.0.119", "10.30.0.200"]
}

# The same wire also carries an IPv6 subnet (dual stack). IPv6 addresses are written in
# canonical form; the default range starts after the subnet-router anycast address.
resource "vsphereipam_ipsubnet" "db6" {
  name            = "db6"
  wire_id         = data.vsphereipam_wire.db.id
  cidr            = "2001:db8:0:30::/64"
  gateway         = "2001:db8:0:30::1"
  dns_servers     = ["2001:db8:0:30::2", "2001:db8:0:30::3"]
  domain          = "db.corp.example"
  reserved_ranges = ["2001:db8:0:30::100-2001:db8:0:30::1ff"]
}

output "db_subnet" {
  value = {
    id                  = vsphereipam_ipsubnet.db.id
    netmask             = vsphereipam_ipsubnet.db.netmask
    prefix_length       = vsphereipam_ipsubnet.db.prefix_length
    additional_wire_ids = vsphereipam_ipsubnet.db.additional_wire_ids
  }
}
