from pathlib import Path

from django.urls import path, re_path
from django.views.static import serve

import ws4redis
from tests.live_pages import views
from tests.project.urls import urlpatterns as project_urls

urlpatterns = [
    *project_urls,
    path("live/<str:client>/", views.page),
    path("live/<str:client>/incidents/", views.add_incident),
    path("live/<str:client>/status/", views.queue_status),
    re_path(r"^vendor/(?P<path>.+)$", views.vendor),
    re_path(r"^static/(?P<path>.+)$", serve, {"document_root": Path(ws4redis.__file__).parent / "static"}),
]
