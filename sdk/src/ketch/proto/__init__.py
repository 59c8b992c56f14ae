"""Generated protobuf modules for the Open Inference Protocol and Ketch's own service.

Do not edit the ``*_pb2`` files: change ``proto/*.proto`` and run ``scripts/gen-proto``.
"""
