"""Scale-out code paths without Docker: S3 warehouse, PostgreSQL catalog, several writers."""
