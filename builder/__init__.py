"""capi-image: build Cluster API node images for Hetzner Cloud over the hcloud API."""

__version__ = "0.1.0"
