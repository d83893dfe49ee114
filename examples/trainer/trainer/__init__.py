"""The sample trainer (see ``train.py``)."""
