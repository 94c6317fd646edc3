"""Hand-written Verilog-2005 library the RTL generator instantiates (``*.v`` package data).

Located with ``importlib.resources.files("rtl")`` so an installed qfab finds it too.
"""
