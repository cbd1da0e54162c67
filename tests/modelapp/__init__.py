"""A model app of the tests: models that publish themselves after commit (ws4redis.model_publishing)."""
