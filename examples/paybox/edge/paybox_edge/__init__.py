"""Paybox edge: reverse proxy + maintenance switch in front of the app."""
