"""Which company a contact belongs to as of a day (README: Company scores), as DuckDB SQL.

The `company_domain` property as it was that day, normalised, wins; else the domain of the
email unless it is a free-mail domain (the shipped list `free_mail_domains.txt`); else none
(phone-only and HubSpot-record-only contacts, free-mail addresses without a company_domain).
"""

from functools import cache
from importlib.resources import files

from leadflow.scoring.conditions import property_column, quote

COMPANY_DOMAIN_PROPERTY = "company_domain"


@cache
def free_mail_domains() -> tuple[str, ...]:
    """The shipped free-mail domains (comments and blank lines left out), in file order."""
    text = files("leadflow.companies").joinpath("free_mail_domains.txt").read_text("utf-8")
    lines = (line.strip().lower() for line in text.splitlines())
    return tuple(dict.fromkeys(line for line in lines if line and not line.startswith("#")))


def normalised_domain_sql(expression: str) -> str:
    """A domain as companies are keyed: lower case, trimmed, without a scheme (`https://`), a
    mailbox (`jane@`), a path, query, port or fragment, a leading `www.` or a trailing dot;
    NULL if nothing is left."""
    value = f"lower(trim({expression}))"
    value = f"regexp_replace({value}, '^[a-z][a-z0-9+.-]*://', '')"  # the scheme
    value = f"regexp_replace({value}, '^[^/?#]*@', '')"  # a mailbox or user info
    value = f"regexp_replace({value}, '[/?#:].*$', '')"  # path, query, fragment, port
    value = f"regexp_replace({value}, '^www\\.', '')"
    return f"NULLIF(rtrim(trim({value}), '.'), '')"


def company_sql(email: str = "email") -> str:
    """The company of a scoring row: reads the row's `company_domain` property column (the
    caller registers the property) and its email."""
    own = normalised_domain_sql(property_column(COMPANY_DOMAIN_PROPERTY))
    # Only an address has a domain: `hubspot:<record id>` keys and phone-only keys have no `@`.
    of_email = normalised_domain_sql(
        f"CASE WHEN contains({email}, '@') THEN string_split({email}, '@')[-1] END"
    )
    free = ", ".join(quote(domain) for domain in free_mail_domains())
    return f"COALESCE({own}, CASE WHEN {of_email} NOT IN ({free}) THEN {of_email} END)"
