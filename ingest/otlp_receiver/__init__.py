"""ingest/otlp_receiver"""
