"""Provincial SOC platform: syslog and agents in, Sigma detections out, incidents for analysts."""

__version__ = "0.1.0"
