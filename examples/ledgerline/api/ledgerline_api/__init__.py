"""Ledgerline API (golive sample stack, unlike paybox)."""
