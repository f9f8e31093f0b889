"""Unsupervised semantic pseudo-labels (CSAD section 3.1): tags, grounding, proposals, refinement, component
features, clustering and histogram filtering."""
