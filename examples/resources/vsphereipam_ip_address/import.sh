# An address is imported by its id in the IPAM store.
terraform import vsphereipam_ip_address.vip 0b5e7c2a-3f1d-4e8a-9c6b-2d4f8a1e7b35
