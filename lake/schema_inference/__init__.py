"""lake/schema_inference"""
