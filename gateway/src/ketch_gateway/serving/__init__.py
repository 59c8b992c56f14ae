"""The model abstraction layer, per model version: cache, deadline queue, batcher, replicas."""
