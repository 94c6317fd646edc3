"""Verilog backend of the generator: per-node emitters, ROM contents, the top, the manifest."""
