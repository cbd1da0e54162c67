"""Template tags of ws4redis (``{% load ws4redis %}``)."""
