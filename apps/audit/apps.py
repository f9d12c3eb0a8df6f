from django.apps import AppConfig


class AuditConfig(AppConfig):
    name = "apps.audit"
    label = "audit"

    def ready(self) -> None:
        from apps.audit import checks  # noqa: F401  (registers the deployment check)
        from apps.audit.services import audit_record
        from apps.audit.throttle import audit_record_throttled
        from apps.core.trail import audit_recorder_register

        # Every layer records through the kernel's port (apps.core.trail); these are its writers.
        audit_recorder_register(audit_record, throttled=audit_record_throttled)
