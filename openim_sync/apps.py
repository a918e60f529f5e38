from django.apps import AppConfig


class OpenIMSyncConfig(AppConfig):
    name = "openim_sync"
    verbose_name = "OpenIM sync"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from openim_sync import checks  # noqa: F401  (registers system checks)
        from openim_sync.callbacks import registry

        registry.load_builtin_handlers()
