"""One thin entry point per event: parse and validate, call the domain in ``shared``, emit the next event."""
