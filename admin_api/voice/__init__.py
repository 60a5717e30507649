"""voice: outbound calls (POST/GET/DELETE /api/voice), its routes and the service code only
the API uses."""
from admin_api.voice.routes import bp

__all__ = ["bp"]
