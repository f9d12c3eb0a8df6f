"""Writes for organizations, members, invitations and onboarding, one module per area:
`memberships`, `invitations`, `organizations`, `onboarding`. Import from the module.

Every service runs in one transaction, writes its audit record in that transaction and sends
emails or socket events only after it commits.
"""
