"""Paybox: a small ledger-backed payments service used as golive's cutover target."""
