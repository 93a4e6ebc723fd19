"""Training, evaluation and registration of stage models (``spira train``, ``spira models``)."""
