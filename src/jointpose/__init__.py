"""jointpose: lift 2D keypoint sequences to 3D poses with a temporal dilated CNN
trained with joint-aware constraint losses."""

from .errors import JointposeError, JointposeWarning

__version__ = "0.1.0"

__all__ = ["JointposeError", "JointposeWarning", "__version__"]
