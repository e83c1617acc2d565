"""Which company a contact belongs to as of a day (README: Company scores), as DuckDB SQL.

The `company_domain` property as it was that day, normalised, wins; else the domain of the
email unless it is a free-mail domain (the shipped list `free_mail_domains.txt`); else none
(phone-only and HubSpot-record-only contacts, free-mail addresses without a company_domain).
"""

from functools import cache
from importlib.resources import files

from leadflow.scoring.conditions import property_column, quote

COMPANY_DOMAIN_PROPERTY = "company_domain"
EMAIL_DOMAIN = '"company:email_domain"'  # the column of `email_domain_sql` in the scoring query


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


def email_domain_sql(email: str = "email") -> str:
    """The domain of an email (lower-cased at ingest: only a leading `www.` is taken off); NULL
    for a key without `@` (`hubspot:<record id>`, a phone-only contact)."""
    domain = f"CASE WHEN contains({email}, '@') THEN string_split({email}, '@')[-1] END"
    return (
        f"NULLIF(CASE WHEN starts_with({domain}, 'www.') THEN {domain}[5:] ELSE {domain} END, '')"
    )


def company_sql(email_domain: str = EMAIL_DOMAIN) -> str:
    """The company of a scoring row, from its `company_domain` property column (the caller
    registers the property) and its email's domain (`email_domain_sql`, computed in an earlier
    layer: in the same expression DuckDB evaluates it several times). The free-mail domains are
    an inline table, which DuckDB hashes (a join), where an IN list of 380 constants is compared
    one by one on every row: 0.1 s instead of 1.1 s for a million contacts."""
    own = normalised_domain_sql(property_column(COMPANY_DOMAIN_PROPERTY))
    free = ", ".join(f"({quote(domain)})" for domain in free_mail_domains())
    return (
        f"COALESCE({own}, CASE WHEN {email_domain} NOT IN "
        f"(SELECT domain FROM (VALUES {free}) free_mail(domain)) THEN {email_domain} END)"
    )
