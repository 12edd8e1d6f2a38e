"""SenderGate: challenge/response mail gateway and its desktop app."""

__version__ = "0.1.0"
