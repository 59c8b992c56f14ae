"""The REST surfaces: the Starlette application, its routes, request bodies and codecs."""
