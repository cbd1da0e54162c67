"""A page written the 0.6 way (jQuery, ``{{ STATIC_URL }}js/ws4redis.js``) for the browser test."""

from django.urls import path
from django.views.generic import TemplateView

urlpatterns = [path("chat/", TemplateView.as_view(template_name="chat.html"))]
