"""Names the whole product shares: organisation types, profile choices, consent version."""

from __future__ import annotations

from bot.i18n import N_

# Bump when the consent text changes materially: people are asked again.
CONSENT_VERSION = "2026-11"

# Mass organisations a citizen can be a member of (MTTQ is the front they all belong to,
# not something a citizen joins on their own).
ORG_TYPES: dict[str, str] = {
    "doan": N_("Ho Chi Minh Communist Youth Union"),
    "hoi_phu_nu": N_("Women's Union"),
    "hoi_nong_dan": N_("Farmers' Union"),
    "hoi_ccb": N_("Veterans' Association"),
    "cong_doan": N_("Trade Union"),
}
ALL_ORG_TYPES: dict[str, str] = {"mttq": N_("Fatherland Front (MTTQ)"), **ORG_TYPES}

GENDERS: dict[str, str] = {
    "female": N_("Female"),
    "male": N_("Male"),
    "other": N_("Other"),
}

AGE_BANDS: dict[str, str] = {
    "u16": N_("Under 16"),
    "16-30": N_("16 to 30"),
    "31-45": N_("31 to 45"),
    "46-60": N_("46 to 60"),
    "60+": N_("Over 60"),
}

LANGUAGE_NAMES = {"vi": "Tiếng Việt", "en": "English"}
