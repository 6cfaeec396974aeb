"""emberlake"""
