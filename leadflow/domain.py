"""The fixed vocabulary of the product: event types, stages, creation sources."""

from typing import Final

EVENT_TYPES: Final[tuple[str, ...]] = (
    "email_sent",
    "email_delivered",
    "email_open",
    "email_click",
    "email_bounce",
    "email_unsubscribe",
    "email_spam_report",
    "page_view",
    "form_submission",
    "chat_started",
    "ad_click",
    "webinar_registration",
    "webinar_attended",
    "meeting_booked",
    "deal_created",
    "deal_won",
    "deal_lost",
    "nps_response",
    "sales_accepted",
)

# Forward order of lifecycle stages; `other` stands outside it.
STAGES: Final[tuple[str, ...]] = (
    "subscriber",
    "lead",
    "marketingqualifiedlead",
    "salesqualifiedlead",
    "opportunity",
    "customer",
    "evangelist",
)
OTHER_STAGE: Final = "other"

MARKETING_STATUSES: Final[tuple[str, ...]] = ("marketing", "non_marketing")

# Sources whose marketing default is configurable (`marketing.creation_defaults`).
CONFIGURABLE_SOURCES: Final[tuple[str, ...]] = (
    "form",
    "import",
    "conversation",
    "integration",
    "ads",
)
# Sources that are always non-marketing, whatever the configuration says.
NON_MARKETING_SOURCES: Final[tuple[str, ...]] = (
    "crm_ui",
    "mobile",
    "email_log",
    "meeting",
    "email_extension",
)
CREATION_SOURCES: Final[tuple[str, ...]] = CONFIGURABLE_SOURCES + NON_MARKETING_SOURCES

# Creation source of a contact first seen in an event; any other type -> integration.
EVENT_CREATION_SOURCE: Final[dict[str, str]] = {
    "form_submission": "form",
    "chat_started": "conversation",
    "ad_click": "ads",
}
DEFAULT_EVENT_CREATION_SOURCE: Final = "integration"
# Contacts that arrive in a contacts file without a creation source were imported.
DEFAULT_RECORD_CREATION_SOURCE: Final = "import"

# Standard contact columns. Every other column of a contacts file is a property too.
CONTACT_IDENTITY_COLUMNS: Final[tuple[str, ...]] = (
    "email",
    "created_at",
    "updated_at",
    "creation_source",
    "integration",
)
CONTACT_STANDARD_PROPERTIES: Final[tuple[str, ...]] = (
    "first_name",
    "last_name",
    "phone",
    "company",
    "job_title",
    "persona",
    "industry",
    "country",
)

EVENT_COLUMNS: Final[tuple[str, ...]] = (
    "event_id",
    "source",
    "email",
    "type",
    "occurred_at",
    "url",
    "form_id",
    "campaign_id",
    "properties",
)
EVENT_REQUIRED_COLUMNS: Final[tuple[str, ...]] = (
    "event_id",
    "source",
    "email",
    "type",
    "occurred_at",
)

# The key of a contact known by its HubSpot Record ID only (no email): `hubspot:<Record ID>`.
RECORD_KEY_PREFIX: Final = "hubspot:"
