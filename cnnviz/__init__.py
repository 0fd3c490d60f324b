"""cnnviz: look inside image CNNs and choose between them."""

__version__ = "0.1.0"
