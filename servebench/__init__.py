"""servebench: which export path of a CNN serves best on Triton, measured."""

__version__ = "0.1.0"
