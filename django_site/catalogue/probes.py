"""Endpoints for machines: the balancer's health check and the benchmark floor."""

from django.conf import settings
from django.db import connection
from django.http import HttpResponse, JsonResponse

from catalogue import cache


def trivial(request):
    """No database, no cache, no template: what the framework alone costs per request."""
    return HttpResponse(b"ok", content_type="text/plain")


def health(request):
    checks = {"db": _check(_query_db), "cache": _check(cache.ping)}
    healthy = all(result == "ok" for result in checks.values())
    return JsonResponse({"node": settings.LAB_NODE, **checks}, status=200 if healthy else 503)


def _query_db():
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()


def _check(probe):
    try:
        probe()
    except Exception as error:  # whatever failed is the answer, not a 500
        first_line = str(error).strip().splitlines()[:1]
        return f"error: {type(error).__name__}: {' '.join(first_line)}".strip()
    return "ok"
