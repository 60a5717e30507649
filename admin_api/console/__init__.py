"""The web console under /console: server-rendered pages (Flask and Jinja) over the same
services as the API, signed in with an API key. `bp` is registered by create_app; the page
modules add their routes to it when imported here."""
from admin_api.console import calls, ivrs, library, session  # noqa: F401  (their routes)
from admin_api.console.base import bp  # noqa: F401
