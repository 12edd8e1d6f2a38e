"""`python -m sendergate`: the same as the `sendergate` command."""

