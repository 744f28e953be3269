"""Incidents: alerts grouped for analysts, their lifecycle, and what is exported from them."""
