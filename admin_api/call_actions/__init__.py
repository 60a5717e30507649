"""call_actions: its routes and the service code only the API uses."""
from admin_api.call_actions.routes import bp

__all__ = ["bp"]
