"""The HubSpot client of a pull or a push: its token and the API's base URL.

The token is a private app's access token, from `HUBSPOT_ACCESS_TOKEN`, or for deployments from
the Prefect Secret block that `hubspot.token_secret` names (read by the flows, which pass it in).
It is handed to the client and nowhere else: never logged, printed, stored or put in a message.
`HUBSPOT_API_BASE` points the client elsewhere (a sandbox, the tests' stand-in).
"""

import os

from leadflow.config import HubSpot
from leadflow.errors import UserError
from leadflow.hubspot.client import DEFAULT_BASE_URL, HubSpotClient

TOKEN_VARIABLE = "HUBSPOT_ACCESS_TOKEN"
BASE_URL_VARIABLE = "HUBSPOT_API_BASE"


class NotConnected(UserError, RuntimeError):
    """No token, or no `hubspot.pull` / `hubspot.push` in the configuration."""


def open_client(settings: HubSpot, token: str | None = None) -> HubSpotClient:
    """A client for the portal: `token` if given (a flow read it from its Secret block), else
    the environment's."""
    token = token or os.environ.get(TOKEN_VARIABLE, "").strip()
    if not token:
        where = (
            f" (or run the Prefect flows, which read the Secret block {settings.token_secret!r})"
            if settings.token_secret
            else ""
        )
        raise NotConnected(
            f"{TOKEN_VARIABLE} is not set: give it a HubSpot private app's access token{where}"
        )
    base_url = os.environ.get(BASE_URL_VARIABLE, "").strip() or DEFAULT_BASE_URL
    return HubSpotClient(token, base_url=base_url)
