"""csad: CSAD (Hsieh & Lai, BMVC 2024) unsupervised component segmentation for logical anomaly detection."""

__version__ = "0.1.0"
