"""Apps and the correction layer: the models asked, answers combined, lessons from feedback."""
