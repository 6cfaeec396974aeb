"""Hostile input, tenancy and authentication against running components."""
