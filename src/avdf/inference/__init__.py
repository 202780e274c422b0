"""Long-video inference, one video in and one prediction out: sliding windows, overlap
stitching, proposal decoding, calibration, the Detector.

Import :class:`avdf.inference.detector.Detector` from its module: it pulls in torch, which
the lightweight pieces here (decode, sliding, calibration) do not need. Dataset evaluation
lives in :mod:`avdf.evaluation`.
"""
