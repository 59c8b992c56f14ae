"""Ketch's PyTorch plugin: TorchScript, ``torch.export`` archives and ONNX graphs.

So far it holds the converter that turns ONNX graphs into PyTorch modules
(:mod:`ketch_torch.onnx_convert`); the plugin's hooks follow.
"""

__all__: list[str] = []
