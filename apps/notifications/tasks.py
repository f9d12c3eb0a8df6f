from __future__ import annotations

from celery import shared_task

from apps.notifications.services import notification_email_send


# Not acks_late: the row is claimed before the email goes out, so a redelivery sends nothing,
# and a worker lost mid-send loses one email rather than sending it twice.
@shared_task(ignore_result=True)
def notification_email_task(notification_id: int) -> None:
    notification_email_send(notification_id=notification_id)
