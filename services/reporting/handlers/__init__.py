"""Reporting's event handlers, one module per consumer's concern. They never commit."""
