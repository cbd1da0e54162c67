"""``manage.py runserver`` serving websockets too, and ``manage.py runwebsocket`` for the split deployment."""
