from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class CasesConfig(AppConfig):
    name = "cases"
    verbose_name = _("Cases")

    def ready(self) -> None:
        # Connects the receivers that bump the rules' version on every save or delete
        # of a class, a time limit, a routing rule or a department, in every process.
        from . import reference  # noqa: F401
