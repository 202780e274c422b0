"""Long-video inference: sliding windows, overlap stitching, proposal decoding, Detector.

Import :class:`avdf.inference.detector.Detector` from its module: it pulls in torch,
which the lightweight pieces here (decode, sliding) do not need.
"""
