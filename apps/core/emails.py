"""One spelling per email address, so that every way of typing an address compares equal.

The portal compares addresses in lower case. A domain may also be internationalised (IDN):
"bücher.example", "BÜCHER.example", its decomposed spelling (u + combining diaeresis) and its
ASCII form "xn--bcher-kva.example" are one domain, and an invitation sent to one must be
acceptable by an account under another. The portal keeps the Unicode form, which people read
and type (Django's mail encodes it to ASCII when sending), after the IDNA 2008 rules with the
UTS #46 mapping that browsers and mail software apply (so "straße.de" stays itself rather than
becoming "strasse.de" as under the older IDNA 2003 codec in the standard library).
"""

from __future__ import annotations

import unicodedata

import idna


def email_normalize(address: str) -> str:
    """The portal's spelling of an email address: lower case, the domain in canonical Unicode."""
    address = unicodedata.normalize("NFC", address.strip())
    local, at, domain = address.rpartition("@")
    if not at:
        return address.lower()
    try:
        domain = idna.decode(idna.encode(domain, uts46=True))
    except (idna.IDNAError, UnicodeError, ValueError):
        # Not a valid IDN (forms reject those before they get here); compare it as typed.
        domain = domain.lower()
    return f"{local.lower()}@{domain}"
