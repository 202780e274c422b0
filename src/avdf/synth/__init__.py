"""The synthetic audio-visual deepfake corpus (``avdf synth``): real talking-face clips with
audio, visual or audio-visual fake segments, written in the LAV-DF layout."""

from avdf.synth.corpus import build_corpus, plan_corpus
from avdf.synth.sources import default_media_root, discover

__all__ = ["build_corpus", "default_media_root", "discover", "plan_corpus"]
