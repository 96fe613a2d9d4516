"""Vendor connectors: verify, parse and normalize webhooks, one folder per vendor."""
