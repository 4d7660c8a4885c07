"""Geometry: the Human3.6M-17 skeleton, cameras and projection, bone and joint-angle maths, temporal filters."""
