"""Domain core of the HS-code recommender: plain, typed Python with no Prefect import.

Tasks (``tasks/``), flows (``flows/``), deployments and the composition roots (``app/``: the
CLI, ``serve``, ``demo``) build on this package and it imports none of them; ``model/``, the
layer below, holds the PyTorch/gensim encoders (``lint-imports`` checks both).
"""

__version__ = "0.1.0"
