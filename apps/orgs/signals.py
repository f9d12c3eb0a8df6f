"""What orgs announces to the layers above it, which react without orgs importing them.

Every signal here is sent with `send()` inside the service's transaction, after the change has been
checked and before it is written: a receiver's writes commit or roll back with the change, and
a receiver that raises aborts the change (nothing is sent robustly). Receivers are connected in
their app's `AppConfig.ready()` (the vault restricts the keys of a removed or demoted
member to what their new role allows).
"""

from __future__ import annotations

from django.dispatch import Signal

# membership: the Membership being removed (still active: the service marks it removed
# after its receivers ran; the row is never deleted); actor: the Membership
# removing it; request: the HttpRequest or None. Sender: Membership.
membership_removed = Signal()

# membership: the Membership with its new role (saved); old_role: the role it had; actor and
# request as above. Sender: Membership.
membership_role_changed = Signal()

# account: the KrakenAccount about to be archived (locked, not yet changed); actor and request
# as above. A receiver that must keep the account in use raises ValidationError (the vault
# refuses while the account still has active or cancel-only API keys). Sender: KrakenAccount.
kraken_account_archiving = Signal()
