"""How paired nodes appear upstream: the exposure modes (instances, gateway, endpoints)."""
