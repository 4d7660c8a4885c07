"""Data: VideoPose3D-format datasets, training windows, 2D keypoint files and layouts."""
