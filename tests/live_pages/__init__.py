"""A small Django project for the live-HTML browser tests (tests/test_live_html.py): htmx and Turbo pages, a view
and a Celery task that publish fragments. It extends the test project (same database, Redis and users)."""
