"""The client side: the portal pages and the JSON API under /api/v1."""
