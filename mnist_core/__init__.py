"""Train, evaluate and run convolutional networks on MNIST."""

__version__ = "0.1.0"
