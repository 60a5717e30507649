"""agents: its routes and the service code only the API uses."""
from admin_api.agents.routes import bp

__all__ = ["bp"]
