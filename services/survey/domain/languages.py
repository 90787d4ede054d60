"""Which language a person is asked in: their own locale if we speak it, else the tenant's default
language, else English. Pure: the catalogs themselves live in ``locales/``."""

from __future__ import annotations

#: The languages with complete catalogs. English is the source language of the templates.
LANGUAGES = ("da", "sv", "nb", "en", "de", "fi")
DEFAULT_LANGUAGE = "en"

# Norwegian arrives as "no", "nb" or "nn"; Nynorsk readers read Bokmål well, the reverse is the norm.
_ALIASES = {"no": "nb", "nn": "nb"}


def language_of(locale: str | None) -> str | None:
    """The language we can write for a locale tag like ``da-DK``, ``sv_FI`` or ``NO``, if any."""
    if not locale:
        return None
    primary = locale.replace("_", "-").split("-", 1)[0].strip().lower()
    primary = _ALIASES.get(primary, primary)
    return primary if primary in LANGUAGES else None


def choose_language(customer_locale: str | None, tenant_default: str | None) -> str:
    return language_of(customer_locale) or language_of(tenant_default) or DEFAULT_LANGUAGE
