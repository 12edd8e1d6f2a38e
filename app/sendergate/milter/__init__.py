"""`sendergate milter`: the gateway's decisions as a milter for Postfix (`smtpd_milters`); Postfix delivers.

protocol.py speaks the milter protocol (asyncio, no C library); filter.py drives
the SMTP handler's own hooks from the milter's events; server.py runs the socket
and the HTTP server (the confirmation page) in one process.
"""
