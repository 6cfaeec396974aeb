"""queryd"""
