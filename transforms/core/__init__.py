"""The Beam-free numeric core of epoxy-beam (plain numpy; never imports apache_beam).

Modules: ``votes`` (LF conventions), ``ids``, ``extension`` (Epoxy), ``statistics``
(sufficient statistics), ``label_models``, ``end_model``, ``labeler`` (fit + ``label_batch``),
``knn``, ``metrics``, ``analysis`` (LF analysis), ``text_template``.
"""
