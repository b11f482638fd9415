"""Inference layer (3, above data and model): the Detector, the decode pipeline, the GPU decoder,
device and thread policy.

The public API: :class:`~fakedet.inference.detector.Detector`, :class:`~fakedet.inference.result.Result`,
:class:`~fakedet.inference.device.DeviceError` and :func:`~fakedet.inference.stream.load_and_score`
(a scan that decodes while the model loads). It does not import the evaluation layer.
"""
