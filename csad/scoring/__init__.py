"""Image-level anomaly scores of CSAD's branches (docs/method.md 4): the Patch Histogram of segmentation maps."""
