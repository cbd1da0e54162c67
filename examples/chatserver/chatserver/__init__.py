"""The ws4redis demo project: chat (broadcast, user-to-user, group), a live dashboard and Celery progress.

The Celery app is imported here so ``@shared_task`` binds to it whenever Django loads the project, as Celery's
Django guide recommends.
"""

from chatserver.celery import app as celery_app

__all__ = ["celery_app"]
