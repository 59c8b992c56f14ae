"""The multi-host test bed and the tests that run on it (see netbed.py and topology.py)."""
