"""Django views ws4redis offers for the operator to route: the Prometheus metrics.

``urlpatterns += [path("metrics", ws4redis.integration.views.metrics)]`` (behind whatever protection the site wants: an
nginx
allow-list, a separate internal port, or a wrapper such as ``staff_member_required``). Under uWSGI's several
workers the figures are the sum over all workers of the host when ``PROMETHEUS_MULTIPROC_DIR`` is set before the
workers start (see ``ws4redis.metrics`` and docs/metrics.md), whichever worker answers.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.views.decorators.http import require_safe
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ws4redis import metrics as _metrics

__all__ = ["metrics"]


@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    """Every ws4redis metric in the Prometheus text format, summed over the host's worker processes."""
    return HttpResponse(generate_latest(_metrics.registry()), content_type=CONTENT_TYPE_LATEST)
