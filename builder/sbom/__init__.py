"""Software bill of materials: what a node image holds (inventory), as CycloneDX (document), and what changed between two images (diff)."""
