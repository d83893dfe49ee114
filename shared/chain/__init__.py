"""The chain, part 1: push / new data / drift → build → train → gate → Model Registry → approval request.

One module per stage; each holds the pure decisions and the steps (``shared.steps.Step``) its function runs.
The internal events that join the stages are defined once, in :mod:`shared.chain.contracts`.
"""
