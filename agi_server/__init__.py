"""The FastAGI engine: runs IVR trees on live channels and owns the AMI connection."""
