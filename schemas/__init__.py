"""Shared contracts: the event envelope, canonical records and the error tree."""
