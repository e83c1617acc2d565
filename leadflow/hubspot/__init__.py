"""The HubSpot API layer: a small client (`client`) and pure record mappings (`records`).

Why it is shaped as it is, with the documented facts it relies on: docs/hubspot-api.md.
"""
