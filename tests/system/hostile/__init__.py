"""A corpus of hostile and broken inputs, generated in code (see ``samples``)."""
