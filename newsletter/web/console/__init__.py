"""The editors' console on the web: /admin pages (admin.py) and the REST API /api/v1 (api.py).

Domain rules live in newsletter/editors/; this package only speaks HTTP.
"""
