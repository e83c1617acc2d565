"""The HubSpot connector: the API client (`client`), its credentials (`connection`), and the
two directions of the sync, `pull` (contacts and email events into the ingest) and `push`
(scores, stages and marketing decisions back to the portal)."""
