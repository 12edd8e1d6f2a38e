"""The frozen app's entry script (PyInstaller runs it as __main__, so it imports the package absolutely)."""

from sendergate.desktop.app import main

raise SystemExit(main())
