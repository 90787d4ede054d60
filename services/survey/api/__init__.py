"""HTTP routes of the survey: the public survey pages (``pages``), and the tenant-scoped API: the
survey settings (``settings``), the invitations (``invitations``) and the bounce webhooks
(``bounces``); a customer's data for their export (``privacy``)."""

from services.survey.api.bounces import bounce_router
from services.survey.api.invitations import invitations_router
from services.survey.api.pages import public_router
from services.survey.api.privacy import privacy_router
from services.survey.api.settings import settings_router

__all__ = ["bounce_router", "invitations_router", "privacy_router", "public_router", "settings_router"]
