"""Deployment: the Dataflow Flex Template (image, metadata, thin main) and nightly scheduling.

Not part of the installed package: the template image copies the repository, and
``python -m templates.metadata`` / ``python -m templates.launch_body`` run from the repo root.
"""
