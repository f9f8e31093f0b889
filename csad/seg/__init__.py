"""Training of CSAD's component segmenter (docs/method.md 3.3-3.6): losses, Logical Synthetic Anomalies, data
preparation and augmentation, and the semi-supervised training loop."""
