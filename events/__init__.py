"""Ingress and the durable inbox: verified webhooks become stored events."""
