"""The Beam-free numeric core of epoxy-beam (plain numpy; never imports apache_beam).

Modules: ``lfs`` (the LF object, keyword / regex builders, fingerprints), ``votes`` (applying
LFs), ``ids``, ``extension`` (Epoxy), ``statistics`` (sufficient statistics), ``label_models``, ``end_model``, ``labeler`` (fit + ``label_batch``),
``knn``, ``metrics``, ``analysis`` (LF analysis), ``text_template``.
"""
