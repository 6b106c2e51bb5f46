"""Ledgerline gateway: proxy to the API with a drain (maintenance) switch."""
