"""Keep the area version in step with writes that bypass the services (admin, shell)."""

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Area
from .versioning import bump_area_version


@receiver(post_save, sender=Area)
@receiver(post_delete, sender=Area)
def area_changed(sender, **kwargs):
    bump_area_version()
