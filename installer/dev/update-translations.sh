#!/bin/sh
# Pick up new tr() strings into the .ts files and compile the .qm files the app loads.
#   sh installer/dev/update-translations.sh        (from the repository root)
# German: every string (translate the new ones, then run this again). English: only the strings with a
# count (%n), whose singular and plural forms are filled in from "(s)" here; English needs no other entry.
set -eu
BIN=${BIN:-.venv/bin}
I18N=resources/i18n
SOURCES=$(find app/sendergate/desktop -name '*.py' | sort)
# shellcheck disable=SC2086
"$BIN/pyside6-lupdate" $SOURCES -ts "$I18N/sendergate_de.ts" -no-obsolete -locations none
# shellcheck disable=SC2086
"$BIN/pyside6-lupdate" $SOURCES -ts "$I18N/sendergate_en.ts" -no-obsolete -locations none -pluralonly \
    -source-language en -target-language en
"$BIN/python" installer/dev/english-plurals.py "$I18N/sendergate_en.ts"
# shellcheck disable=SC2086
"$BIN/pyside6-lupdate" $SOURCES -ts "$I18N/sendergate_en.ts" -no-obsolete -locations none -pluralonly -silent
for lang in de en; do
    "$BIN/pyside6-lrelease" "$I18N/sendergate_$lang.ts" -qm "$I18N/sendergate_$lang.qm"
done
