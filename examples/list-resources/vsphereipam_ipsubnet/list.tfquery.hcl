# The store's subnets named app...; `wire_id` narrows to the subnets of one wire.
list "vsphereipam_ipsubnet" "app" {
  provider = vsphereipam
  config {
    name_regex = "^app"
  }
}
