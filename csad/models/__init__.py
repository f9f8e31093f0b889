"""Neural networks of CSAD: the shared frozen backbone factory (:mod:`csad.models.backbone`) and the networks built
on it (component segmenter, LGST)."""
