"""The SMTP side: the protocol object (server.py), the handler that decides (handler.py) and the trace
headers put on what is handed on (trace.py)."""
