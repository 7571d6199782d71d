# A subnet is imported by its id in the IPAM store.
terraform import vsphereipam_ipsubnet.db 6f1c2a57-1d5e-4f0e-9a53-0c3c0d2f4b11
