"""Data files shipped with SenderGate (templates, CSS, icons, translations), as `sendergate.resources`."""
