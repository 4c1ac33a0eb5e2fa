"""The bus runtime: streams and consumers table, connection, publishing, consuming with the handler policy."""
