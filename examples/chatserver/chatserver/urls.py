"""URLs of the demo. Static files are served by uWSGI's ``static-map`` (see uwsgi.ini); the fallback route below
serves them from the apps when nothing else does, so the demo also works under a bare ``uwsgi`` command line."""

from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.contrib.staticfiles.views import serve
from django.urls import path, re_path

from chatserver import incident_views, views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", views.DemoLoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("chat/", views.chat, name="chat"),
    path("chat/send/", views.send, name="chat-send"),
    path("dashboard/", views.dashboard, name="dashboard"),
    path("jobs/", views.jobs, name="jobs"),
    path("jobs/start/", views.start_job, name="jobs-start"),
    path("incidents/", incident_views.board, name="incidents"),
    path("incidents/open/", incident_views.open_incident, name="incident-open"),
    path("incidents/<int:pk>/", incident_views.detail, name="incident"),
    path("incidents/<int:pk>/diagnose/", incident_views.diagnose, name="incident-diagnose"),
    path("incidents/<int:pk>/<str:action>/", incident_views.transition, name="incident-transition"),
    # Demo only: a production site lets nginx or uWSGI serve STATIC_ROOT.
    re_path(r"^static/(?P<path>.*)$", serve, {"insecure": True}),
]
