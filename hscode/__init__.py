"""Domain core of the HS-code recommender: plain, typed Python with no Prefect import.

Flows (``flows/``) and tasks (``tasks/``) are thin wrappers around this package;
``model/`` holds the PyTorch/gensim encoders.
"""

__version__ = "0.1.0"
