"""lake/partitioning"""
