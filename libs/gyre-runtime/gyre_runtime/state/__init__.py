"""State kept in NATS KV buckets, so no service holds in memory what a restart would need."""
