"""A minted token read back from the chain and its content: ``show``, ``verify-asset`` (every
claim re-derived and checked) and ``export-car``."""
