"""Shipped report templates (Jinja2); data files only."""
