"""Search: top-k chunks for a query, through the embed service."""
