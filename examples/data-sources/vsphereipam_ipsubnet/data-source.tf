# Usually another configuration (the network team's) manages the subnet; here it is created
# alongside so that the example applies on its own.
data "vsphereipam_wire" "lookup" {
  name = "pg-db"
}

resource "vsphereipam_ipsubnet" "db" {
  name     = "db"
  wire_id  = data.vsphereipam_wire.lookup.id
  cidr     = "10.30.0.0/24"
  start_ip = "10.30.0.10"
  end_ip   = "10.30.0.99"
}

# Found by name and network (both must match); `id = ...` looks it up directly.
data "vsphereipam_ipsubnet" "db" {
  name = "db"
  cidr = "10.30.0.0/24"

  depends_on = [vsphereipam_ipsubnet.db]
}

output "db_subnet" {
  value = {
    id       = data.vsphereipam_ipsubnet.db.id
    gateway  = data.vsphereipam_ipsubnet.db.gateway
    size     = tonumber(data.vsphereipam_ipsubnet.db.size)
    free     = tonumber(data.vsphereipam_ipsubnet.db.free)
    held     = data.vsphereipam_ipsubnet.db.held
    observed = data.vsphereipam_ipsubnet.db.observed
  }
}
