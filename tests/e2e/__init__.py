"""End-to-end: real builds on real VMs, the workflows as CI runs them."""
