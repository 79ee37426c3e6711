"""The domain-adaptation study: how much of the sim-to-real gap does translation close?

``segmenter`` is the fixed instrument (a small smp U-Net, its training budget and mIoU);
``gap`` measures the gap on the embedded synthetic benchmark that translation must close.
"""
