"""Fill the English numerus forms of resources/i18n/sendergate_en.ts from the "(s)" in each source string:
"%n sender(s) waiting" -> "%n sender waiting" / "%n senders waiting"; "entry(s)" -> "entry" / "entries".

    .venv/bin/python installer/dev/english-plurals.py resources/i18n/sendergate_en.ts

A form already written by hand (not marked unfinished) is kept.
"""

from __future__ import annotations

import re
import sys
import xml.etree.ElementTree as ET

_WORD = re.compile(r"(\w+)\(s\)")


def plural(word: str) -> str:
    if word.endswith("y") and word[-2:-1] not in ("a", "e", "i", "o", "u"):
        return word[:-1] + "ies"
    return word + "s"


def forms(source: str) -> tuple[str, str]:
    return _WORD.sub(lambda m: m.group(1), source), _WORD.sub(lambda m: plural(m.group(1)), source)


def fill(path: str) -> int:
    tree = ET.parse(path)
    changed = 0
    for message in tree.getroot().iter("message"):
        translation = message.find("translation")
        source = message.findtext("source") or ""
        if message.get("numerus") != "yes" or translation is None or translation.get("type") != "unfinished":
            continue
        for child in list(translation):
            translation.remove(child)
        translation.text = "\n            "
        for text in forms(source):
            form = ET.SubElement(translation, "numerusform")
            form.text = text
            form.tail = "\n            "
        del translation.attrib["type"]
        changed += 1
    ET.indent(tree, space="    ")
    with open(path, "wb") as f:
        f.write(b'<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE TS>\n')
        tree.write(f, encoding="utf-8", xml_declaration=False)
        f.write(b"\n")
    return changed


if __name__ == "__main__":
    print(f"{fill(sys.argv[1])} English plural forms filled")
