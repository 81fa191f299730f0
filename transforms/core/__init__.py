"""The Beam-free numeric core of epoxy-beam (plain numpy; never imports apache_beam).

Modules: ``lfs`` (the LF object, keyword / regex builders, fingerprints), ``votes`` (applying
LFs), ``ids``, ``extension`` (Epoxy), ``statistics`` (sufficient statistics), ``label_models``, ``end_model``, ``labeler`` (fit + ``label_batch``),
``knn``, ``knn_merge`` (partitions, exact voters), ``top_k_lists`` (merging neighbour lists), ``metrics``,
``analysis`` (LF analysis), ``text_template``.
"""
