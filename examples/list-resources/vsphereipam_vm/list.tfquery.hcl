# Every VM of DC0 (templates left out); Terraform shows at most 100 unless `limit` says more.
list "vsphereipam_vm" "dc0" {
  provider = vsphereipam
  limit    = 500
  config {
    datacenter = "DC0"
  }
}
