"""Example ai-gateway provider plugin (see provider.py)."""
