"""HLS C++ backend: the lowered graph as Vitis HLS C++ (templates in ``templates/hls``)."""
