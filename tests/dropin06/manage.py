#!/usr/bin/env python
"""The 0.6-style test project's manage.py (``manage.py test chat06``, ``manage.py runserver``)."""

import os
import sys

if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chat06.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
