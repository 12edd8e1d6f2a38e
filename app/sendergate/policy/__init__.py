"""The policy: pure decisions about senders, recipients and messages.

Imports nothing else of the project, touches no socket, database or clock.
"""
