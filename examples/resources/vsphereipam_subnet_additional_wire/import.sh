# An attachment is imported as <subnet_id>/<wire_id>.
terraform import vsphereipam_subnet_additional_wire.legacy 6f1c2a57-1d5e-4f0e-9a53-0c3c0d2f4b11/5d3f0c36-8e4b-4a49-9c55-3c6e9b8b2a10/network-17
