"""avdf: audio-visual deepfake detection and temporal localization."""

__version__ = "0.1.0"
