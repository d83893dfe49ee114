"""The sample prediction server (see ``app.py``)."""
